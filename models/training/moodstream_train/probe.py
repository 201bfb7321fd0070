"""What trained checkpoints can still give without more training, measured on their validation split.

    python -m moodstream_train.probe checkpoints/campaign/student_ab_swa/final.pt \
        checkpoints/campaign/student_ab160_swa/final.pt --out probe.json

For each checkpoint: its accuracy on the held-out faces, alone and with test-time views (flip,
shifts of one and two pixels, zooms of 0.95-1.10, and the mirror image of each), and the mean of
the softmax over growing sets of those views. For the checkpoints together: their ensemble (the
mean of their softmax, with and without flip averaging) and, where they share a network, their
weight average (a uniform "model soup", Wortsman et al. 2022) with batch-norm statistics
recomputed on the training images. Every checkpoint must hold out the same split, so that none
of them is measured on faces it trained on; PublicTest is never read.

Every figure costs latency at run time that the one-pass float16 graph does not pay (an ensemble
of k networks or n views costs k or n passes a face), so these are the ceilings of cheap levers,
for deciding what is worth exporting or training, not models to ship as they are.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import DEFAULT_DATA_DIR, load_split, stratified_holdout
from .swa import recompute_batchnorm
from .train import load_checkpoint, predict, to_tensor

log = logging.getLogger("moodstream_train.probe")


def shifted(x: torch.Tensor, dx: int, dy: int, pad: int = 2) -> torch.Tensor:
    """``x`` moved ``dx`` pixels right and ``dy`` down, the edge pixels repeated into the gap."""
    side = x.shape[-1]
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return padded[:, :, pad - dy : pad - dy + side, pad - dx : pad - dx + side]


def zoomed(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` scaled about its centre by ``scale``: cropped back to size when larger, its edge
    pixels repeated around it when smaller."""
    side = x.shape[-1]
    n = int(round(side * scale))
    y = F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False)
    if n >= side:
        o = (n - side) // 2
        return y[:, :, o : o + side, o : o + side]
    p = side - n
    return F.pad(y, (p // 2, p - p // 2, p // 2, p - p // 2), mode="replicate")


#: The test-time views measured, by name; each is also measured on its mirror image ("<name>+f").
VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "id": lambda x: x,
    "right1": lambda x: shifted(x, 1, 0),
    "left1": lambda x: shifted(x, -1, 0),
    "up1": lambda x: shifted(x, 0, -1),
    "down1": lambda x: shifted(x, 0, 1),
    "right2": lambda x: shifted(x, 2, 0),
    "left2": lambda x: shifted(x, -2, 0),
    "zoom0.95": lambda x: zoomed(x, 0.95),
    "zoom1.05": lambda x: zoomed(x, 1.05),
    "zoom1.10": lambda x: zoomed(x, 1.10),
}

#: Sets of views averaged, in the order a run-time graph would add them (each costs a pass a face).
VIEW_SETS: dict[str, list[str]] = {
    "flip (2 passes)": ["id", "id+f"],
    "flip, shifts of 1 px (6)": ["id", "id+f", "right1", "left1", "right1+f", "left1+f"],
    "flip, shifts of 2 px (6)": ["id", "id+f", "right2", "left2", "right2+f", "left2+f"],
    "flip, zoom 1.05 (4)": ["id", "id+f", "zoom1.05", "zoom1.05+f"],
    "flip, zoom 1.10 (4)": ["id", "id+f", "zoom1.10", "zoom1.10+f"],
    "every view (20)": [name + tail for name in VIEWS for tail in ("", "+f")],
}


def view_probabilities(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's softmax on every view of ``x`` and on its mirror image."""
    out = {}
    for name, view in VIEWS.items():
        seen = view(x)
        out[name] = predict(model, seen, flip_tta=False)
        out[name + "+f"] = predict(model, seen.flip(3), flip_tta=False)
    return out


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    return round((probabilities.argmax(1) == labels).float().mean().item(), 4)


def uniform_soup(models: list[torch.nn.Module], x_train: torch.Tensor) -> torch.nn.Module:
    """The mean of the models' weights, batch-norm statistics recomputed on ``x_train``."""
    soup = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    averaged = {}
    for key, value in states[0].items():
        if value.dtype.is_floating_point:
            averaged[key] = torch.stack([s[key] for s in states]).mean(0)
        else:
            averaged[key] = value
    soup.load_state_dict(averaged)
    recompute_batchnorm(soup, x_train)
    return soup


def held_out_split(summaries: list[dict]) -> tuple[float, int]:
    """The split every checkpoint held out; refuses checkpoints that held out different faces."""
    splits = {(s.get("val_fraction"), s.get("split_seed", s.get("seed"))) for s in summaries}
    if len(splits) != 1 or None in next(iter(splits)):
        raise SystemExit("the checkpoints must hold out one and the same validation split, not "
                         f"{sorted(map(str, splits))}: otherwise some are measured on faces they trained on")
    return next(iter(splits))


def probe(paths: list[Path], data_dir: Path, device: torch.device) -> dict:
    """The figures the module's docstring lists, as a dict (accuracies in [0, 1])."""
    loaded = [load_checkpoint(p, device) for p in paths]
    fraction, split_seed = held_out_split([ckpt.get("summary", {}) for _, ckpt in loaded])
    images, labels = load_split(data_dir, "Training")
    train_idx, val_idx = stratified_holdout(labels, fraction, split_seed)
    x_val, y_val = to_tensor(images[val_idx], device), torch.from_numpy(labels[val_idx]).to(device)

    result: dict = {"validation": {"fraction": fraction, "split_seed": split_seed, "faces": len(val_idx)},
                    "checkpoints": {}}
    per_model = []
    for path, (model, _) in zip(paths, loaded, strict=True):
        views = view_probabilities(model, x_val)
        per_model.append(views)
        figures = {"views": {name: accuracy(p, y_val) for name, p in views.items()},
                   "view_sets": {name: accuracy(sum(views[v] for v in names), y_val)
                                 for name, names in VIEW_SETS.items()}}
        result["checkpoints"][str(path)] = figures
        log.info("%s: one pass %.4f; %s", path, figures["views"]["id"],
                 ", ".join(f"{k} {v:.4f}" for k, v in figures["view_sets"].items()))
    if len(paths) > 1:
        result["ensemble"] = {
            "one pass each": accuracy(sum(v["id"] for v in per_model), y_val),
            "flip each": accuracy(sum(v["id"] + v["id+f"] for v in per_model), y_val),
        }
        log.info("ensemble of %d: %s", len(paths), result["ensemble"])
        if len({ckpt["spec"] for _, ckpt in loaded}) == 1:
            soup = uniform_soup([m for m, _ in loaded], to_tensor(images[train_idx], device))
            result["soup"] = {"one pass": accuracy(predict(soup, x_val, flip_tta=False), y_val),
                              "flip": accuracy(predict(soup, x_val, flip_tta=True), y_val)}
            log.info("weight average of %d: %s", len(paths), result["soup"])
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", type=Path, nargs="+", help="train.py or swa.py final.pt files")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = probe(args.checkpoints, args.data, torch.device(args.device))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
