"""Fine-tune a trained EmotionNet with stochastic weight averaging (SWA), on CPU or GPU.

    python -m moodstream_train.swa runs/student/final.pt --out runs/student_swa

Starting from a trained checkpoint, trains a few more epochs on the same training images (the
same held-out split, rebuilt from the checkpoint's seed and fraction), with a learning rate that
falls from ``--lr`` to a tenth within every epoch, and averages the weights reached at the end of
each epoch. The average sits in a flatter region of the loss than any single point, which tends to
generalise better. BatchNorm statistics are then recomputed for the averaged weights. The
starting model also serves as a frozen teacher for a share ``--self-distill`` of the loss (its
soft labels carry what the original teacher taught it). Defaults are the shipped run's.

Writes ``OUT/final.pt`` in ``train.py``'s format, so ``export.py`` takes it as is, and
``OUT/last.pt`` after every epoch (``--resume``, which may also extend a finished run with a
larger ``--epochs``). With ``--stop-after-minutes`` it stops between epochs before its budget
would be passed and exits with ``BUDGET_SPENT`` (75), as ``train.py`` does.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .augment import augment
from .data import DEFAULT_DATA_DIR, load_split, stratified_holdout
from .train import (
    bf16_runs_fast,
    distillation_loss,
    load_checkpoint,
    predict,
    restore_state,
    save_atomically,
    seed_everything,
    stop_if_budget_spent,
    to_tensor,
)

log = logging.getLogger("moodstream_train.swa")


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> None:
    """Replace BatchNorm running statistics by exact averages over ``x`` (un-augmented)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
    model.train()
    for i in range(0, len(x), batch):
        model(x[i : i + batch])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict(model, x, flip_tta=False).argmax(1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="trained checkpoint (train.py's final.pt)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.03, help="learning rate at the start of every epoch")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--self-distill", type=float, default=0.5,
                    help="share of the loss that is KL divergence to the starting model (0: none)")
    ap.add_argument("--kd-temperature", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="bf16 autocast (auto: where the device runs it fast)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after-minutes", type=float, default=0.0,
                    help="stop between epochs before this budget would be passed (0: no budget)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    model, start = load_checkpoint(args.checkpoint, device)
    base = start.get("summary", {})
    seed, val_fraction = base.get("seed", 1234), base.get("val_fraction", 0.05)
    split_seed = base.get("split_seed", seed)
    seed_everything(seed)
    args.out.mkdir(parents=True, exist_ok=True)

    images, labels = load_split(args.data, "Training")
    train_idx, val_idx = stratified_holdout(labels, val_fraction, split_seed)
    x_train, y_train = to_tensor(images[train_idx], device), torch.from_numpy(labels[train_idx]).to(device)
    x_val, y_val = to_tensor(images[val_idx], device), torch.from_numpy(labels[val_idx]).to(device)

    teacher = None
    if args.self_distill > 0:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    start_acc = accuracy(model, x_val, y_val)
    log.info("device %s, %d train, %d held-out images; starting model held-out acc %.4f",
             device, len(x_train), len(x_val), start_acc)

    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_runs_fast(device))
    if use_bf16:
        model = model.to(memory_format=torch.channels_last)
        if teacher is not None:
            teacher = teacher.to(memory_format=torch.channels_last)
    steps_per_epoch = len(x_train) // args.batch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                                weight_decay=args.weight_decay)
    averaged = copy.deepcopy(model)
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    first_epoch, averaged_count, history = 0, 0, []
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        state = restore_state(last, device, generator, model=model, averaged=averaged, optimizer=optimizer)
        first_epoch, averaged_count, history = state["epoch"], state["averaged_count"], state["history"]
        if "torch_rng" in state:  # dropout's draws: the resumed run is the unbroken one's exactly
            torch.set_rng_state(state["torch_rng"])
        log.info("resumed at epoch %d", first_epoch)

    t0 = time.time()
    for epoch in range(first_epoch, args.epochs):
        stop_if_budget_spent(args.stop_after_minutes, t0, first_epoch, epoch)
        model.train()
        order = torch.randperm(len(x_train), generator=generator, device=device)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps_per_epoch)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * args.batch : (step + 1) * args.batch]
            xb = augment(x_train[idx], generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb).float()
                loss = F.cross_entropy(logits, y_train[idx], label_smoothing=args.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(xb).float()
                    kd = distillation_loss(logits, t_logits, args.kd_temperature)
                    loss = (1 - args.self_distill) * loss + args.self_distill * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        # Running mean of the weights at the end of each epoch (the low point of its LR cycle).
        averaged_count += 1
        with torch.no_grad():
            for avg, cur in zip(averaged.parameters(), model.parameters(), strict=True):
                avg.mul_((averaged_count - 1) / averaged_count).add_(cur / averaged_count)
        epoch_acc = accuracy(model, x_val, y_val)
        history.append({"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "val_acc": epoch_acc})
        log.info("epoch %2d/%d  loss %.3f  held-out acc %.4f  %.0fs", epoch + 1, args.epochs,
                 total_loss / steps_per_epoch, epoch_acc, time.time() - t0)
        save_atomically({"model": model.state_dict(), "averaged": averaged.state_dict(),
                         "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                         "torch_rng": torch.get_rng_state(),
                         "epoch": epoch + 1, "averaged_count": averaged_count, "history": history}, last)

    recompute_batchnorm(averaged, x_train)
    swa_acc = accuracy(averaged, x_val, y_val)
    swa_acc_flip = (predict(averaged, x_val, flip_tta=True).argmax(1) == y_val).float().mean().item()
    log.info("averaged weights of %d epochs: held-out acc %.4f (flip %.4f); starting model %.4f",
             averaged_count, swa_acc, swa_acc_flip, start_acc)
    summary = dict(base)
    summary.update({
        "heldout_acc": swa_acc, "heldout_acc_flip": swa_acc_flip,
        "swa": {"from": str(args.checkpoint), "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
                "self_distill": args.self_distill, "kd_temperature": args.kd_temperature,
                "label_smoothing": args.label_smoothing, "weight_decay": args.weight_decay,
                "device": str(device), "precision": "bf16" if use_bf16 else "fp32",
                "heldout_acc_before": start_acc, "history": history,
                "seconds": round(time.time() - t0, 1)},
    })
    averaged = averaged.to(memory_format=torch.contiguous_format)
    save_atomically({"model": averaged.state_dict(), "spec": start["spec"], "dropout": start["dropout"],
                     "summary": summary}, args.out / "final.pt")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("done: %s", args.out / "final.pt")


if __name__ == "__main__":
    main()
