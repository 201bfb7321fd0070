#!/usr/bin/env bash
# One prepared run on a lent GPU: a teacher, then four students distilled from it in parallel.
# Usage (repository root): OUT=dir DATA=dir bash models/training/gpu_run.sh
set -u
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L
timeout "${TEACHER_SECONDS:-200}" python3 -m moodstream_train.train --data "$DATA" --spec "64,64|128,128|256,256|512,512" \
  --epochs 60 --out "$RUNS/teacher" > "$RUNS/teacher.log" 2>&1
tail -3 "$RUNS/teacher.log" | cut -c1-400
[ -f "$RUNS/teacher/final.pt" ] || cp "$RUNS/teacher/last.pt" "$RUNS/teacher/final.pt"
python3 - "$RUNS/teacher/final.pt" "$OUT/teacher_fp16.pt" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], weights_only=False)
c["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in c["model"].items()}
torch.save(c, sys.argv[2])
PY
i=0
for spec in "32|64,64|128,128|256,256" "32|64|128,128|256,256" "24|48,48|96,96|192,192,192" "32|64|128,128,128|256,256,256"; do
  i=$((i+1))
  timeout "${STUDENT_SECONDS:-330}" python3 -m moodstream_train.train --data "$DATA" --spec "$spec" --epochs 80 \
    --teacher "$RUNS/teacher/final.pt" --out "$RUNS/s$i" > "$RUNS/s$i.log" 2>&1 &
done
wait
for i in 1 2 3 4; do
  cp "$RUNS/s$i/final.pt" "$OUT/student$i.pt" 2>/dev/null || cp "$RUNS/s$i/last.pt" "$OUT/student$i.pt"
  tail -2 "$RUNS/s$i.log" | cut -c1-400
done
cat "$RUNS"/teacher.log "$RUNS"/s*.log > "$OUT/train_log.txt"
