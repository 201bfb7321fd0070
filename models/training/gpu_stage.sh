#!/usr/bin/env bash
# Stage a tree small enough for the device machine, and put everything back afterwards.
#
# The device tool sends the checkout's tracked files and its untracked files that git does not
# ignore, plus the ignored paths named in `carry`, 64 MiB at most. This repository's tracked
# files alone are about 117 MB (the campaign's checkpoints), and FER2013's Training archive, which
# lies beside the checkout, 52 MB. So, for one device call:
#
#   bash models/training/gpu_stage.sh          # Training archive into .gpu/ (ignored); tracked
#                                              # files over 1 MB out of the index (still on disk,
#                                              # still in HEAD) and hidden in .git/info/exclude
#   run: OUT=$OUT DATA=.gpu bash models/training/gpu_run.sh    with carry [".gpu"]
#   bash models/training/gpu_stage.sh --undo   # at once: the index and exclude file as before
#
# Never commit between the two: the commit would delete those files. The staging refuses to
# start over staged changes, and --undo restores exactly the entries it took out.
set -euo pipefail
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"
DATA=${DATA:-$(cd .. && pwd)/shared/data/fer2013}
LIMIT_BYTES=${LIMIT_BYTES:-$((64 * 1024 * 1024))}
BIG_BYTES=${BIG_BYTES:-1000000}
EXCLUDE=$(git rev-parse --git-path info/exclude)
LIST=.gpu/staged-files.txt
BEGIN_MARK="# gpu_stage.sh: begin (remove with gpu_stage.sh --undo)"
END_MARK="# gpu_stage.sh: end"

if [ "${1:-}" = "--undo" ]; then
  if [ ! -f "$LIST" ]; then
    echo "nothing staged ($LIST is absent)"
    exit 0
  fi
  xargs -0 -r git reset -q -- < "$LIST"
  if [ -f "$EXCLUDE" ]; then
    sed -i "/^$BEGIN_MARK\$/,/^$END_MARK\$/d" "$EXCLUDE"
  fi
  count=$(tr -cd '\0' < "$LIST" | wc -c)
  rm -f "$LIST"
  echo "restored $count files to the index; $EXCLUDE as before"
  exit 0
fi

if [ -f "$LIST" ]; then
  echo "already staged ($LIST exists): run gpu_stage.sh --undo first" >&2
  exit 1
fi
if ! git diff --cached --quiet; then
  echo "the index holds staged changes: commit or unstage them first (--undo must restore exactly)" >&2
  exit 1
fi
if [ ! -f "$DATA/fer2013_Training.npz.xz" ]; then
  echo "no fer2013_Training.npz.xz in $DATA: set DATA to the folder that has it" >&2
  exit 1
fi
mkdir -p .gpu
cp "$DATA/fer2013_Training.npz.xz" .gpu/
git ls-files -z | while IFS= read -r -d '' path; do
  if [ -f "$path" ] && [ "$(stat -c %s "$path")" -gt "$BIG_BYTES" ]; then printf '%s\0' "$path"; fi
done > "$LIST"
mkdir -p "$(dirname "$EXCLUDE")"
{
  echo "$BEGIN_MARK"
  tr '\0' '\n' < "$LIST" | sed 's|^|/|'
  echo "$END_MARK"
} >> "$EXCLUDE"
xargs -0 -r git rm -q --cached -- < "$LIST"

# What the device tool will send: tracked files, untracked ones git does not ignore, and .gpu.
bytes=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null |
  awk '{ s += $1 } END { print s + 0 }')
data_bytes=$(du -sb .gpu | cut -f1)
total=$((bytes + data_bytes))
echo "staged: $(tr -cd '\0' < "$LIST" | wc -c) files out of the index; the tree sends $bytes bytes, .gpu $data_bytes," \
  "together $total of $LIMIT_BYTES"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "still over the device's limit: undoing" >&2
  bash "$0" --undo
  exit 1
fi
echo "now: run with carry [\".gpu\"] 'OUT=\$OUT DATA=.gpu bash models/training/gpu_run.sh'; then gpu_stage.sh --undo"
