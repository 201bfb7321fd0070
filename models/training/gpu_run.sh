#!/usr/bin/env bash
# One prepared run on a lent GPU (issue 14): three teachers trained in parallel, then four students
# distilled from their ensemble in parallel. Every run holds out the same validation split (10% of
# every class of Training, split seed 1234), which alone chooses among them; PublicTest is measured
# once, afterwards, for the chosen student. Each run checkpoints every epoch; one cut short by its
# timeout hands on its last checkpoint. Usage (repository root):
#   OUT=dir DATA=dir bash models/training/gpu_run.sh
set -u
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L
TEACHER="64,64|128,128|256,256|512,512"
SEEDS="1234 2027 3141"
for seed in $SEEDS; do
  timeout "${TEACHER_SECONDS:-240}" python3 -m moodstream_train.train --data "$DATA" --spec "$TEACHER" \
    --epochs 60 --seed "$seed" --out "$RUNS/teacher_$seed" > "$RUNS/teacher_$seed.log" 2>&1 &
done
wait
teachers=()
for seed in $SEEDS; do
  tail -2 "$RUNS/teacher_$seed.log" | cut -c1-300
  [ -f "$RUNS/teacher_$seed/final.pt" ] || cp "$RUNS/teacher_$seed/last.pt" "$RUNS/teacher_$seed/final.pt"
  teachers+=("$RUNS/teacher_$seed/final.pt")
  # Half-precision weights (the state dict only) to bring back: the students' teacher, kept.
  python3 - "$RUNS/teacher_$seed/final.pt" "$OUT/teacher_$seed.pt" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], weights_only=False)
c["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in c["model"].items()}
c.pop("optimizer", None), c.pop("scheduler", None)
torch.save(c, sys.argv[2])
PY
done
i=0
for spec in "32|64|128,128|256,256" "32|64,64|128,128|256,256" "24|48,48|96,96|192,192,192" "32|64|128,128|256,256"; do
  i=$((i+1))
  epochs=80
  [ "$i" -eq 4 ] && epochs=160  # the shipped network, a longer schedule
  timeout "${STUDENT_SECONDS:-330}" python3 -m moodstream_train.train --data "$DATA" --spec "$spec" --epochs "$epochs" \
    --teacher "${teachers[@]}" --out "$RUNS/s$i" > "$RUNS/s$i.log" 2>&1 &
done
wait
for i in 1 2 3 4; do
  cp "$RUNS/s$i/final.pt" "$OUT/student$i.pt" 2>/dev/null || cp "$RUNS/s$i/last.pt" "$OUT/student$i.pt"
  tail -2 "$RUNS/s$i.log" | cut -c1-400
done
cat "$RUNS"/teacher_*.log "$RUNS"/s*.log > "$OUT/train_log.txt"
