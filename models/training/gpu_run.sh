#!/usr/bin/env bash
# One prepared run on a lent GPU for issue 14's 70%, within one device call (10 minutes):
#   1. four teachers of the campaign's teacher network (seeds 1234 2027 3141 4242), in parallel;
#   2. from their ensemble, each teacher labelling ten kept views of every image and their mirror
#      images (as the CPU campaign's students learned from two): three students of the adopted
#      network (two seeds at 160 epochs, one at 240) and the camera's network (on every step's
#      fresh augmentation, as the shipped camera model learned), in parallel;
#   3. stochastic weight averaging of the three host students (16 epochs from lr 0.03).
# Every run holds out the same validation split (10% of every class of Training, split seed
# 1234), which alone chooses among the candidates; PublicTest is measured once, afterwards, for
# the chosen one (adopt.sh, on the CPU). Each phase stops its runs cleanly between epochs at its
# budget: a training run fits its epochs to it after the first (its learning-rate schedule laid
# out again, so that it ends annealed), a run stopped early all the same hands on its last
# checkpoint, and `timeout` backs that up.
#
# What comes back in $OUT (the device returns at most 8 files of 16 MiB, 64 MiB in all): the four
# teachers in half precision (teacher_<seed>.pt, 9.4 MB each, for CPU students of this ensemble)
# and candidates.tar (the three averaged students, or a student itself where its averaging did not
# finish, the camera student, every summary and log: moodstream_train.handback).
#
# The tracked tree (checkpoints included, 117 MB) is over the device's 64 MiB: stage a slim
# tree first with `bash models/training/gpu_stage.sh` (Training archive into .gpu/, checkpoints
# out of the index), call the device with carry [".gpu"] and
#   OUT=$OUT DATA=.gpu bash models/training/gpu_run.sh
# then `bash models/training/gpu_stage.sh --undo` at once.
set -u
export PYTHONUNBUFFERED=1
DATA=$(cd "${DATA:?DATA: the folder with fer2013_Training.npz.xz}" && pwd) || exit 1
OUT=$(mkdir -p "${OUT:?OUT: the folder to bring back}" && cd "$OUT" && pwd) || exit 1
RUNS=$(mkdir -p "${RUNS:-/tmp/runs}" && cd "${RUNS:-/tmp/runs}" && pwd) || exit 1
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-python3}
TEACHER=${TEACHER:-"64,64|128,128|256,256|512,512"}
STUDENT=${STUDENT:-"32|64|128,128,128|256,256,256"}
CAMERA=${CAMERA:-"8|16,16|32,32|64,64|128,128"}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-60}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-160}
PATIENT_EPOCHS=${PATIENT_EPOCHS:-240}
CAMERA_EPOCHS=${CAMERA_EPOCHS:-160}
SWA_EPOCHS=${SWA_EPOCHS:-16}
TEACHER_VIEWS=${TEACHER_VIEWS:-10}
TEACHER_SECONDS=${TEACHER_SECONDS:-200}
STUDENT_SECONDS=${STUDENT_SECONDS:-270}
SWA_SECONDS=${SWA_SECONDS:-50}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-"1234 2027 3141 4242"}
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"  # for the tests, which run all of it on tiny networks
command -v nvidia-smi > /dev/null && nvidia-smi -L

# run NAME SECONDS MODULE ARGS...: moodstream_train.MODULE into $RUNS/NAME, stopped between epochs
# 15 seconds before SECONDS, killed at SECONDS. Training runs also get --fit-epochs-to-budget: after
# their first epoch they shorten themselves to the epochs that fit, their learning rate laid out
# again, so that they end annealed rather than cut halfway down the one-cycle. A training run
# stopped early all the same leaves last.pt, from which train.final_from_last writes the final.pt
# that the next phase goes on from.
run() {
  local name=$1 seconds=$2 module=$3
  shift 3
  local minutes fit=()
  minutes=$(awk -v s="$seconds" 'BEGIN { printf "%.2f", (s - 15) / 60 }')
  [ "$module" = train ] && fit=(--fit-epochs-to-budget)
  timeout "$seconds" "$PYTHON" -W ignore -m "moodstream_train.$module" --data "$DATA" --out "$RUNS/$name" \
    --threads "$THREADS" --stop-after-minutes "$minutes" "${fit[@]}" "${EXTRA[@]}" "$@" > "$RUNS/$name.log" 2>&1
  echo "$name: exit $? $(tail -1 "$RUNS/$name.log" | cut -c1-240)"
  if [ "$module" = train ] && [ ! -f "$RUNS/$name/final.pt" ] && [ -f "$RUNS/$name/last.pt" ]; then
    "$PYTHON" -c 'import sys; from pathlib import Path; from moodstream_train.train import final_from_last
final_from_last(Path(sys.argv[1]))' "$RUNS/$name"
  fi
}

start=$(date +%s)
teachers=()
for seed in $SEEDS; do
  run "teacher_$seed" "$TEACHER_SECONDS" train --spec "$TEACHER" --epochs "$TEACHER_EPOCHS" --seed "$seed" &
  teachers+=("$RUNS/teacher_$seed/final.pt")
done
wait
echo "teachers done after $(($(date +%s) - start)) s"
present=()
for teacher in "${teachers[@]}"; do [ -f "$teacher" ] && present+=("$teacher"); done
[ "${#present[@]}" -gt 0 ] || { echo "no teacher finished: see $RUNS/teacher_*.log" >&2; exit 1; }

ensemble=(--teacher "${present[@]}" --teacher-flip)
run student_160a "$STUDENT_SECONDS" train --spec "$STUDENT" --epochs "$STUDENT_EPOCHS" --seed 1234 \
  "${ensemble[@]}" --teacher-views "$TEACHER_VIEWS" &
run student_160b "$STUDENT_SECONDS" train --spec "$STUDENT" --epochs "$STUDENT_EPOCHS" --seed 2027 \
  "${ensemble[@]}" --teacher-views "$TEACHER_VIEWS" &
run student_240 "$STUDENT_SECONDS" train --spec "$STUDENT" --epochs "$PATIENT_EPOCHS" --seed 1234 \
  "${ensemble[@]}" --teacher-views "$TEACHER_VIEWS" &
run camera "$STUDENT_SECONDS" train --spec "$CAMERA" --dropout 0.1 --epochs "$CAMERA_EPOCHS" --seed 1234 \
  "${ensemble[@]}" &
wait
echo "students done after $(($(date +%s) - start)) s"
for name in student_160a student_160b student_240; do
  [ -f "$RUNS/$name/final.pt" ] && run "${name}_swa" "$SWA_SECONDS" swa "$RUNS/$name/final.pt" --epochs "$SWA_EPOCHS" --lr 0.03 &
done
wait
echo "averaging done after $(($(date +%s) - start)) s"

# Half-precision weights, without the optimizer state: what comes back (moodstream_train.handback).
"$PYTHON" -m moodstream_train.handback "$RUNS" "$OUT" $SEEDS
ls -la "$OUT"
echo "all done after $(($(date +%s) - start)) s"
