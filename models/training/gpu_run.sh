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
# budget (a run stopped early hands on its last checkpoint) and `timeout` backs that up.
#
# What comes back in $OUT (the device returns at most 8 files of 16 MiB, 64 MiB in all): the four
# teachers in half precision (teacher_<seed>.pt, 9.4 MB each, for CPU students of this ensemble)
# and candidates.tar (the three averaged students, the camera student, every summary and log).
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
# 15 seconds before SECONDS, killed at SECONDS; a run stopped early leaves last.pt, from which
# stopped_early writes the final.pt that the next phase goes on from.
run() {
  local name=$1 seconds=$2 module=$3
  shift 3
  local minutes
  minutes=$(awk -v s="$seconds" 'BEGIN { printf "%.2f", (s - 15) / 60 }')
  timeout "$seconds" "$PYTHON" -W ignore -m "moodstream_train.$module" --data "$DATA" --out "$RUNS/$name" \
    --threads "$THREADS" --stop-after-minutes "$minutes" "${EXTRA[@]}" "$@" > "$RUNS/$name.log" 2>&1
  echo "$name: exit $? $(tail -1 "$RUNS/$name.log" | cut -c1-240)"
  [ -f "$RUNS/$name/final.pt" ] || [ ! -f "$RUNS/$name/last.pt" ] || stopped_early "$RUNS/$name"
}

# stopped_early DIR: DIR/final.pt from DIR/last.pt, in train.py's final format (the split in its
# summary, which swa.py and a student's teacher check), marked as stopped early.
stopped_early() {
  "$PYTHON" - "$1" <<'PY'
import json, sys
from pathlib import Path
import torch
run = Path(sys.argv[1])
last = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
done = last["history"][-1] if last["history"] else {}
summary = {"spec": last["spec"], "dropout": last["dropout"], "val_fraction": last["val_fraction"],
           "split_seed": last["split_seed"], "epochs": last["epochs"], "stopped_after_epoch": last["epoch"],
           "heldout_acc": done.get("val_acc"), "heldout_acc_flip": done.get("val_acc_flip")}
torch.save({"model": last["model"], "spec": last["spec"], "dropout": last["dropout"], "summary": summary},
           run / "final.pt")
(run / "summary.json").write_text(json.dumps(summary, indent=2))
PY
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

# Half-precision weights, without the optimizer state: what comes back.
"$PYTHON" - "$RUNS" "$OUT" $SEEDS <<'PY'
import sys
from pathlib import Path
import torch
runs, out, seeds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
def slim(src: Path, dst: Path) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    keep = {k: ckpt[k] for k in ("model", "spec", "dropout", "summary") if k in ckpt}
    keep["model"] = {k: v.half() if v.is_floating_point() else v for k, v in keep["model"].items()}
    torch.save(keep, dst)
for seed in seeds:
    if (runs / f"teacher_{seed}" / "final.pt").is_file():
        slim(runs / f"teacher_{seed}" / "final.pt", out / f"teacher_{seed}.pt")
(runs / "back").mkdir(exist_ok=True)
for name in ("student_160a_swa", "student_160b_swa", "student_240_swa", "camera"):
    if (runs / name / "final.pt").is_file():
        slim(runs / name / "final.pt", runs / "back" / f"{name}.pt")
PY
cp "$RUNS"/*.log "$RUNS/back/" 2>/dev/null
for dir in "$RUNS"/*/; do
  [ -f "$dir/summary.json" ] && cp "$dir/summary.json" "$RUNS/back/$(basename "$dir").summary.json"
done
tar -C "$RUNS/back" -cf "$OUT/candidates.tar" .
ls -la "$OUT"
echo "all done after $(($(date +%s) - start)) s"
