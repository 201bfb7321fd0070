"""What a run on a lent device brings back (``gpu_run.sh``'s last step), within the device's limits
on what returns (at most 8 files of 16 MiB, 64 MiB in all).

    python -m moodstream_train.handback RUNS OUT SEED [SEED ...]

Writes ``OUT/teacher_<seed>.pt`` for every teacher that finished, and ``OUT/candidates.tar``:
each host student's averaged (SWA) checkpoint, or the student itself where its averaging did not
finish, the camera student, and every run's summary and log. Checkpoints keep their weights in
half precision and drop the optimizer state; ``load_checkpoint`` reads them as they are.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tarfile
from pathlib import Path

import torch

log = logging.getLogger("moodstream_train.handback")

#: gpu_run.sh's host students, each followed by ``_swa`` where its averaging finished.
HOST_STUDENTS = ("student_160a", "student_160b", "student_240")


def slim(src: Path, dst: Path) -> None:
    """``src`` without its optimizer state, its floating-point weights in half precision."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    keep = {k: ckpt[k] for k in ("model", "spec", "dropout", "summary") if k in ckpt}
    keep["model"] = {k: v.half() if v.is_floating_point() else v for k, v in keep["model"].items()}
    torch.save(keep, dst)


def hand_back(runs: Path, out: Path, seeds: list[str]) -> list[str]:
    """Fill ``out`` as the module's docstring says; return the names packed into candidates.tar."""
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        final = runs / f"teacher_{seed}" / "final.pt"
        if final.is_file():
            slim(final, out / f"teacher_{seed}.pt")
    back = runs / "back"
    back.mkdir(exist_ok=True)
    for name in HOST_STUDENTS:
        for run in (f"{name}_swa", name):
            if (runs / run / "final.pt").is_file():
                slim(runs / run / "final.pt", back / f"{run}.pt")
                if run == name:
                    log.warning("%s: its averaging did not finish; the student itself comes back", name)
                break
    if (runs / "camera" / "final.pt").is_file():
        slim(runs / "camera" / "final.pt", back / "camera.pt")
    for logfile in runs.glob("*.log"):
        shutil.copy(logfile, back / logfile.name)
    for summary in runs.glob("*/summary.json"):
        shutil.copy(summary, back / f"{summary.parent.name}.summary.json")
    names = sorted(p.name for p in back.iterdir())
    with tarfile.open(out / "candidates.tar", "w") as tar:
        for name in names:
            tar.add(back / name, arcname=name)
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, help="the folder of gpu_run.sh's runs")
    ap.add_argument("out", type=Path, help="what comes back from the device")
    ap.add_argument("seeds", nargs="*", help="the teachers' seeds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    names = hand_back(args.runs, args.out, args.seeds)
    log.info("candidates.tar: %s", ", ".join(names))


if __name__ == "__main__":
    main()
