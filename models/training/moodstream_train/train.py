"""Train an EmotionNet on FER2013 (six MoodStream classes), optionally distilled from a teacher.

    python -m moodstream_train.train --spec "32|64,64|128,128|256,256" --epochs 80 --out runs/s1
    python -m moodstream_train.train ... --teacher runs/teacher/final.pt   # knowledge distillation

Checkpoints every epoch to ``OUT/last.pt`` (``--resume`` continues from it); the finished
model goes to ``OUT/final.pt`` with a ``summary.json``. Uses CUDA when available.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment
from .data import DEFAULT_DATA_DIR, LABELS, load_split, stratified_holdout
from .nets import EmotionNet, count_macs, count_params

log = logging.getLogger("moodstream_train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images).to(device).float().div_(255.0).unsqueeze(1)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, flip_tta: bool, batch: int = 1024) -> torch.Tensor:
    """Softmax probabilities, averaged with the horizontally flipped image when flip_tta."""
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        p = F.softmax(model(xb).float(), dim=1)
        if flip_tta:
            p = (p + F.softmax(model(xb.flip(3)).float(), dim=1)) / 2
        out.append(p)
    return torch.cat(out)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence from the teacher's softened distribution, scaled by T^2 (Hinton et al.)."""
    return F.kl_div(F.log_softmax(logits / temperature, 1), F.softmax(teacher_logits / temperature, 1),
                    reduction="batchmean") * temperature * temperature


def restore_state(path: Path, device: torch.device, generator: torch.Generator, **stateful) -> dict:
    """Load a ``last.pt``, restore the named modules/optimizers and the generator, return the state."""
    state = torch.load(path, map_location=device, weights_only=False)
    for key, obj in stateful.items():
        obj.load_state_dict(state[key])
    generator.set_state(state["generator"].to("cpu") if device.type == "cpu" else state["generator"])
    return state


def load_checkpoint(path: Path, device: torch.device) -> tuple[EmotionNet, dict]:
    ckpt = torch.load(path, map_location=device, weights_only=False)
    model = EmotionNet(ckpt["spec"], dropout=ckpt["dropout"]).to(device)
    model.load_state_dict(ckpt["model"])
    return model, ckpt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="folder with fer2013_*.npz.xz")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--spec", default="32|64,64|128,128|256,256")
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--teacher", type=Path, help="checkpoint of a teacher to distil from")
    ap.add_argument("--kd-weight", type=float, default=0.7, help="share of the distillation loss")
    ap.add_argument("--kd-temperature", type=float, default=4.0)
    ap.add_argument("--val-fraction", type=float, default=0.05,
                    help="share of Training held out for progress reports (PublicTest is never used)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    seed_everything(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    images, labels = load_split(args.data, "Training")
    train_idx, val_idx = stratified_holdout(labels, args.val_fraction, args.seed)
    x_train, y_train = to_tensor(images[train_idx], device), torch.from_numpy(labels[train_idx]).to(device)
    x_val, y_val = to_tensor(images[val_idx], device), torch.from_numpy(labels[val_idx]).to(device)
    log.info("device %s, %d train, %d held-out images", device, len(x_train), len(x_val))

    model = EmotionNet(args.spec, dropout=args.dropout).to(device)
    log.info("spec %s: %d parameters, %.1f M MACs", args.spec, count_params(model), count_macs(args.spec) / 1e6)
    teacher = None
    if args.teacher:
        teacher, _ = load_checkpoint(args.teacher, device)
        teacher.eval()
        log.info("distilling from %s (%d parameters)", args.teacher, count_params(teacher))

    steps_per_epoch = len(x_train) // args.batch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    start_epoch, history = 0, []
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        state = restore_state(last, device, generator, model=model, optimizer=optimizer, scheduler=scheduler)
        if state.get("epochs", args.epochs) != args.epochs:
            # The one-cycle schedule is laid out for the whole run; it cannot be stretched.
            raise SystemExit(f"{last} belongs to a run of {state['epochs']} epochs: resume it with "
                             f"--epochs {state['epochs']}, or start afresh with another --out")
        start_epoch, history = state["epoch"], state["history"]
        log.info("resumed at epoch %d", start_epoch)

    use_amp = device.type == "cuda"
    if use_amp:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator, device=device)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            xb = augment(x_train[idx], generator)
            yb = y_train[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=args.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(xb).float()
                    kd = distillation_loss(logits.float(), t_logits, args.kd_temperature)
                    loss = (1 - args.kd_weight) * loss + args.kd_weight * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() if step % 50 == 0 else 0.0
        val_acc = (predict(model, x_val, flip_tta=False).argmax(1) == y_val).float().mean().item()
        val_acc_tta = (predict(model, x_val, flip_tta=True).argmax(1) == y_val).float().mean().item()
        history.append({"epoch": epoch + 1, "val_acc": val_acc, "val_acc_flip": val_acc_tta})
        log.info("epoch %3d/%d  loss %.3f  held-out acc %.4f (flip %.4f)  %.0fs",
                 epoch + 1, args.epochs, total_loss / max(1, steps_per_epoch // 50), val_acc, val_acc_tta,
                 time.time() - t0)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "epoch": epoch + 1, "epochs": args.epochs, "history": history, "spec": args.spec,
                    "dropout": args.dropout}, last)

    summary = {
        "spec": args.spec, "dropout": args.dropout, "labels": list(LABELS),
        "params": count_params(model), "macs": count_macs(args.spec),
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
        "teacher": str(args.teacher) if args.teacher else None,
        "kd_weight": args.kd_weight if args.teacher else None,
        "kd_temperature": args.kd_temperature if args.teacher else None,
        "val_fraction": args.val_fraction, "device": str(device),
        "train_images": len(x_train), "heldout_images": len(x_val),
        "heldout_acc": history[-1]["val_acc"], "heldout_acc_flip": history[-1]["val_acc_flip"],
        "train_seconds": round(time.time() - t0, 1),
    }
    torch.save({"model": model.state_dict(), "spec": args.spec, "dropout": args.dropout,
                "summary": summary}, args.out / "final.pt")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("done: %s", json.dumps(summary))


if __name__ == "__main__":
    main()
