"""Train an EmotionNet on FER2013 (six MoodStream classes), optionally distilled from a teacher.

    python -m moodstream_train.train --spec "32|64,64|128,128|256,256" --epochs 80 --out runs/s1
    python -m moodstream_train.train ... --teacher runs/teacher/final.pt   # knowledge distillation
    python -m moodstream_train.train ... --teacher runs/t1/final.pt runs/t2/final.pt  # from an ensemble

Checkpoints every epoch to ``OUT/last.pt`` (``--resume`` continues from it); the finished
model goes to ``OUT/final.pt`` with a ``summary.json``. Uses CUDA when available. With
``--stop-after-minutes`` a run stops between epochs before it would pass its time budget and
exits with ``BUDGET_SPENT`` (75); ``--resume`` continues it later, in another session. With
``--fit-epochs-to-budget`` as well, a run that the budget would cut short shortens itself after
its first epoch instead, to as many epochs as fit at that pace, and lays its one-cycle learning
rate out again for them: a run that must end within one sitting (a lent GPU's ten minutes) then
ends annealed, where a cut would leave it at a high learning rate halfway down the cycle.

With ``--teacher-views K`` the teachers see every training image only K times, before the
student's first epoch: K augmented views of it are drawn (as uint8) and labelled once with the
teachers' logits, and each student epoch trains on one of them per image, chosen at random (as
Fast Knowledge Distillation, Shen and Xing 2022, keeps its teacher's soft labels). On a CPU, where
a teacher's forward pass costs more than the student's whole step, this makes a distillation epoch
more than twice as fast (measured on this project's CPU: 45 s, against about 105 s from the
measured cost of its steps). The logits go to ``OUT/teacher_views.pt`` after every view, with a
digest and a fingerprint of the view's images; the views themselves are drawn again from the seed
in seconds, so ``--resume`` (in another session, from a commit) reuses every view that comes out
the same, bit for bit or, on a CPU whose float arithmetic rounds a few pixels the other way,
within ``FINGERPRINT_TOLERANCE``. The time budget counts the labelling, and stops between views.
``--teacher-flip`` has every teacher label the mirror image too (each view's or step's), and the
student learns the mean of both: the teachers' flip averaging, which costs them one more forward
pass each (once per view with ``--teacher-views``).

The validation split is ``--val-fraction`` of every class of Training, drawn with ``--split-seed``
(fixed, whatever ``--seed`` initialises the network with), so that every member of an ensemble
and every student is chosen on the same images, which none of them trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment
from .data import DEFAULT_DATA_DIR, LABELS, load_split, stratified_holdout
from .nets import EmotionNet, count_macs, count_params

log = logging.getLogger("moodstream_train")

#: Exit status of a run that stopped at its time budget with its checkpoint saved (EX_TEMPFAIL).
BUDGET_SPENT = 75

#: The validation protocol of issue 14: at least 10% of every class, one fixed draw.
VAL_FRACTION = 0.10
SPLIT_SEED = 1234


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


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor | list[torch.Tensor],
                      temperature: float) -> torch.Tensor:
    """KL divergence from the teachers' softened distribution, scaled by T^2 (Hinton et al.).

    Several teachers' logits give their ensemble: the mean of their softened distributions.
    """
    if isinstance(teacher_logits, torch.Tensor):
        teacher_logits = [teacher_logits]
    target = torch.stack([F.softmax(t / temperature, 1) for t in teacher_logits]).mean(0)
    return F.kl_div(F.log_softmax(logits / temperature, 1), target,
                    reduction="batchmean") * temperature * temperature


def bf16_runs_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast speeds training up here: CUDA, or a CPU with bf16 instructions
    (AVX512-BF16 or AMX; measured on this project's 2-core Xeon: 2.9x for the teacher, 2.3x for
    the student, with channels-last)."""
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return device.type == "cpu" and any(getattr(cpu, name, lambda: False)() for name in checks)


def save_atomically(state: dict, path: Path) -> None:
    """Write a checkpoint so that a run killed mid-write leaves the previous one intact."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def restore_state(path: Path, device: torch.device, generator: torch.Generator, **stateful) -> dict:
    """Load a ``last.pt``, restore the named modules/optimizers and the generator, return the state."""
    state = torch.load(path, map_location=device, weights_only=False)
    for key, obj in stateful.items():
        obj.load_state_dict(state[key])
    generator.set_state(state["generator"].to("cpu") if device.type == "cpu" else state["generator"])
    return state


def stop_if_budget_spent(minutes: float, started: float, first_epoch: int, epoch: int) -> None:
    """Before ``epoch``: exit with ``BUDGET_SPENT`` if another epoch, at the mean pace since
    ``first_epoch`` began at ``started``, would pass a budget of ``minutes`` (0: no budget)."""
    if not minutes or epoch <= first_epoch:
        return
    elapsed = time.time() - started
    if elapsed + elapsed / (epoch - first_epoch) > minutes * 60:
        log.info("time budget of %.0f min reached after epoch %d: resume with --resume", minutes, epoch)
        sys.exit(BUDGET_SPENT)


#: The share of its budget a run fits its epochs into: runs sharing a device (gpu_run.sh's four
#: teachers) may start their first epochs while the others still load, and then slow down.
FIT_SHARE = 0.85


def fitted_epochs(asked: int, done: int, seconds_an_epoch: float, seconds_left: float) -> int:
    """How many epochs a run asked for ``asked`` should have, ``done`` of them over and
    ``seconds_left`` of its budget left at ``seconds_an_epoch``: ``asked`` where they fit, else as
    many as fit, and at least one more (its schedule must still have a step to anneal to)."""
    if seconds_an_epoch <= 0:
        return asked
    return max(done + 1, min(asked, done + int(seconds_left / seconds_an_epoch)))


def refit_schedule(optimizer: torch.optim.Optimizer, lr: float, epochs: int, steps_per_epoch: int,
                   steps_done: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The run's one-cycle schedule laid out again for ``epochs``, at step ``steps_done`` of it, the
    optimizer's learning rate set to that step's."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    scheduler.last_epoch = steps_done - 1
    scheduler.step()  # to step ``steps_done``, setting the optimizer's learning rate
    return scheduler


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ensemble_logits(teachers: list[torch.nn.Module], x: torch.Tensor, flip: bool) -> list[torch.Tensor]:
    """Every teacher's logits on ``x`` and, with ``flip``, on its mirror image next to them: the
    members whose softened distributions the student learns the mean of."""
    logits = []
    for teacher in teachers:
        logits.append(teacher(x).float())
        if flip:
            logits.append(teacher(x.flip(3)).float())
    return logits


def draw_views(x: torch.Tensor, views: int, seed: int, batch: int = 512) -> Iterator[torch.Tensor]:
    """The ``views`` augmented copies of ``x`` (uint8, like ``x``'s shape), one at a time: the same
    ones for the same seed, so that a run resumed in another session draws them again in seconds."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    for _ in range(views):
        view = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
        for i in range(0, len(x), batch):
            view[i : i + batch] = augment(x[i : i + batch], generator).mul_(255.0).round_().to(torch.uint8)
        yield view


def image_digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.cpu().numpy().tobytes()).hexdigest()


#: How far (grey levels) an image's pixel sum may be from the kept one for the view to count as the
#: same. The same view drawn on another CPU differs where a pixel's value falls within rounding of
#: a half (the AMD EPYC and the Intel Xeon of this project disagree on the first view already);
#: another augmentation's brightness and contrast jitter alone moves a face's sum by thousands.
FINGERPRINT_TOLERANCE = 64


def view_fingerprint(view: torch.Tensor) -> torch.Tensor:
    """Each image's pixel sum, int32, on the CPU: what ``teacher_views`` compares when a view's
    digest differs from the kept one."""
    return view.reshape(len(view), -1).sum(1, dtype=torch.int64).to(torch.int32).cpu()


@torch.no_grad()
def label_view(teachers: list[torch.nn.Module], view: torch.Tensor, use_bf16: bool, flip: bool,
               batch: int = 512) -> torch.Tensor:
    """The ensemble's logits on a uint8 view, (N, members, classes) (``ensemble_logits``' members),
    taken on the very image the student will see."""
    out = []
    for i in range(0, len(view), batch):
        with torch.autocast(view.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out.append(torch.stack(ensemble_logits(teachers, view[i : i + batch].float().div_(255.0), flip), dim=1))
    return torch.cat(out)


def teacher_views(path: Path, key: dict, teachers: list[torch.nn.Module], x: torch.Tensor, views: int, seed: int,
                  use_bf16: bool, flip: bool, deadline: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``views`` augmented uint8 views of ``x`` ((views, *x.shape)), the ensemble's logits on each
    ((views, N, members, classes), float32) and the seconds earlier runs spent labelling them.

    The logits are kept at ``path`` after every view (with the digest and the fingerprint of its
    images), for ``key``: a later run draws the views again and reuses the logits of every view that
    comes out the same image for image, or apart only by rounding (``FINGERPRINT_TOLERANCE``).
    Before labelling a view that would end past ``deadline`` (a ``time.time()``; 0: none) the run
    exits with ``BUDGET_SPENT``, its labelling kept."""
    # bfloat16 holds a bf16 autocast's logits exactly, in half the space (they are committed between sessions).
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    kept = {"key": key, "digests": [], "fingerprints": [], "logits": None, "seconds": 0.0}
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=False)
        if stored.get("key") == key and "digests" in stored:
            # One fingerprint a kept view; None for those kept before fingerprints.
            fingerprints = list(stored.get("fingerprints", []))
            kept = {**stored, "fingerprints": fingerprints + [None] * (len(stored["digests"]) - len(fingerprints))}
        else:
            log.info("teacher views: %s was labelled by other teachers or for other data: labelling again", path)
    earlier_seconds = kept["seconds"]
    images = torch.empty((views, *x.shape), dtype=torch.uint8, device=x.device)
    logits: list[torch.Tensor] = []
    labelled, labelling, fingerprinted = 0, 0.0, False
    for index, view in enumerate(draw_views(x, views, seed)):
        images[index] = view
        digest, fingerprint = image_digest(view), view_fingerprint(view)
        if index < len(kept["digests"]):
            known = kept["fingerprints"][index]
            if kept["digests"][index] == digest:
                if known is None:  # a file kept before fingerprints: add this view's, which is the kept image's
                    kept["fingerprints"][index] = fingerprint
                    fingerprinted = True
                logits.append(kept["logits"][index].to(x.device, torch.float32))
                continue
            if known is not None:
                apart = int((fingerprint - known).abs().max())
                if apart <= FINGERPRINT_TOLERANCE:
                    log.info("teacher views: view %d differs from the image kept only by rounding (an image's sum "
                             "at most %d grey levels apart): its labels reused", index + 1, apart)
                    logits.append(kept["logits"][index].to(x.device, torch.float32))
                    continue
            log.info("teacher views: view %d is not the image kept%s: labelling it and the rest again, replacing "
                     "the kept labels in %s", index + 1, "" if known is not None else
                     " (kept without a fingerprint, so only the same image bit for bit counts)", path)
        if index and not labelled:
            log.info("teacher views: %d of %d read back from %s", index, views, path)
        if deadline and labelled and time.time() + labelling / labelled > deadline:
            log.info("teacher views: time budget reached after %d of %d views: resume with --resume", index, views)
            sys.exit(BUDGET_SPENT)
        started = time.time()
        logits.append(label_view(teachers, view, use_bf16, flip).to(dtype).float())
        labelling += time.time() - started
        labelled += 1
        kept = {"key": key, "digests": [*kept["digests"][:index], digest],
                "fingerprints": [*kept["fingerprints"][:index], fingerprint],
                "logits": torch.stack(logits).to("cpu", dtype), "seconds": kept["seconds"] + time.time() - started}
        save_atomically(kept, path)
        log.info("teacher views: %d of %d labelled (%.0fs)", index + 1, views, time.time() - started)
    if fingerprinted and not labelled:
        save_atomically(kept, path)
        log.info("teacher views: fingerprints added to %s", path)
    if not labelled:
        log.info("teacher views: %d of %d read back from %s", views, views, path)
    return images, torch.stack(logits), earlier_seconds


def final_from_last(run: Path) -> dict:
    """Write ``run/final.pt`` and ``summary.json`` from a run's ``last.pt`` (a run stopped by its
    budget or killed), in the final format that a student's ``--teacher``, ``swa.py`` and the exports
    read, its split kept and the epoch it stopped after recorded; return the summary."""
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    done = last["history"][-1] if last["history"] else {}
    summary = {"spec": last["spec"], "dropout": last["dropout"], "val_fraction": last["val_fraction"],
               "split_seed": last["split_seed"], "epochs": last["epochs"],
               "epochs_asked": last.get("epochs_asked", last["epochs"]), "stopped_after_epoch": last["epoch"],
               "heldout_acc": done.get("val_acc"), "heldout_acc_flip": done.get("val_acc_flip")}
    save_atomically({"model": last["model"], "spec": last["spec"], "dropout": last["dropout"], "summary": summary},
                    run / "final.pt")
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


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
    ap.add_argument("--teacher", type=Path, nargs="+",
                    help="checkpoint(s) of the teacher(s) to distil from; several make an ensemble")
    ap.add_argument("--teacher-views", type=int, default=0,
                    help="the teachers label this many augmented views of every image once, and every epoch "
                         "trains on one of them (0: the teachers run on every step's own augmentation)")
    ap.add_argument("--teacher-views-file", type=Path,
                    help="where the teachers' labels of the views are kept (default OUT/teacher_views.pt); "
                         "students of the same teachers, seed and split can share one")
    ap.add_argument("--teacher-flip", action="store_true",
                    help="every teacher also labels the mirror image of what the student sees, and the student "
                         "learns the mean of both (flip averaging, the teachers' own test-time augmentation)")
    ap.add_argument("--kd-weight", type=float, default=0.7, help="share of the distillation loss")
    ap.add_argument("--kd-temperature", type=float, default=4.0)
    ap.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                    help="share of every class of Training held out to choose models (PublicTest never is)")
    ap.add_argument("--split-seed", type=int, default=SPLIT_SEED, help="seed of the validation draw")
    ap.add_argument("--seed", type=int, default=1234, help="seed of initialisation, order and augmentation")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="bf16 autocast (auto: where the device runs it fast)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after-minutes", type=float, default=0.0,
                    help="stop between epochs before this budget would be passed (0: no budget)")
    ap.add_argument("--fit-epochs-to-budget", action="store_true",
                    help="with --stop-after-minutes: after the first epoch, run as many epochs as fit in the "
                         "budget at its pace (at most --epochs), the learning-rate schedule laid out for them")
    args = ap.parse_args(argv)
    if args.fit_epochs_to_budget and not args.stop_after_minutes:
        raise SystemExit("--fit-epochs-to-budget fits the run to --stop-after-minutes: give that too")
    epochs_asked = args.epochs
    run_started = time.time()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    seed_everything(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    images, labels = load_split(args.data, "Training")
    train_idx, val_idx = stratified_holdout(labels, args.val_fraction, args.split_seed)
    x_train, y_train = to_tensor(images[train_idx], device), torch.from_numpy(labels[train_idx]).to(device)
    x_val, y_val = to_tensor(images[val_idx], device), torch.from_numpy(labels[val_idx]).to(device)
    log.info("device %s, %d train, %d held-out images", device, len(x_train), len(x_val))

    model = EmotionNet(args.spec, dropout=args.dropout).to(device)
    log.info("spec %s: %d parameters, %.1f M MACs", args.spec, count_params(model), count_macs(args.spec) / 1e6)
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_runs_fast(device))
    teachers = []
    for path in args.teacher or []:
        teacher, ckpt = load_checkpoint(path, device)
        split = ckpt.get("summary", ckpt)  # a final.pt's summary, or a last.pt's own keys
        fraction, split_seed = split.get("val_fraction"), split.get("split_seed", split.get("seed"))
        if (fraction, split_seed) != (args.val_fraction, args.split_seed):
            # A teacher that trained on this run's validation images would pass their labels on.
            raise SystemExit(f"teacher {path} was trained with another validation split ({fraction} of "
                             f"Training, seed {split_seed}; this run: {args.val_fraction}, seed {args.split_seed})")
        teacher.eval()
        if use_bf16:
            teacher = teacher.to(memory_format=torch.channels_last)
        teachers.append(teacher)
        log.info("distilling from %s (%d parameters)", path, count_params(teacher))

    if args.teacher_views < 0 or (args.teacher_views and not teachers):
        raise SystemExit("--teacher-views takes a positive number of views, and one or more --teacher")
    if args.teacher_flip and not teachers:
        raise SystemExit("--teacher-flip needs one or more --teacher")
    teacher_acc = None
    if teachers:
        # What the student is taught, scored as the teachers are (float32, softmax at T=1, averaged).
        ensemble = torch.stack([predict(teacher, x_val, flip_tta=args.teacher_flip) for teacher in teachers]).mean(0)
        teacher_acc = (ensemble.argmax(1) == y_val).float().mean().item()
        log.info("the teachers%s: validation acc %.4f", " with their mirror images" if args.teacher_flip else "",
                 teacher_acc)

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
        if state.get("epochs_asked") == args.epochs:  # fitted to its budget: its schedule came back with it
            args.epochs = state["epochs"]
        epochs_asked = state.get("epochs_asked", epochs_asked)
        if state.get("epochs", args.epochs) != args.epochs:
            # The one-cycle schedule is laid out for the whole run; it cannot be stretched.
            raise SystemExit(f"{last} belongs to a run of {state['epochs']} epochs: resume it with "
                             f"--epochs {state['epochs']}, or start afresh with another --out")
        if state.get("teacher_views", 0) != args.teacher_views:
            raise SystemExit(f"{last} was trained with --teacher-views {state.get('teacher_views', 0)}: resume it "
                             "with the same, or start afresh with another --out")
        if state.get("teacher_flip", False) != args.teacher_flip:
            raise SystemExit(f"{last} was trained {'with' if state.get('teacher_flip') else 'without'} "
                             "--teacher-flip: resume it the same way, or start afresh with another --out")
        start_epoch, history = state["epoch"], state["history"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        log.info("resumed at epoch %d", start_epoch)

    kept_images = kept_logits = None
    views_started, earlier_labelling = time.time(), 0.0
    if args.teacher_views and start_epoch < args.epochs:
        key = {"teachers": [file_digest(path) for path in args.teacher], "seed": args.seed,
               "train_images": len(x_train), "val_fraction": args.val_fraction, "split_seed": args.split_seed,
               "bf16": use_bf16, "teacher_flip": args.teacher_flip}
        deadline = run_started + args.stop_after_minutes * 60 if args.stop_after_minutes else 0.0
        labels_file = args.teacher_views_file or args.out / "teacher_views.pt"
        kept_images, kept_logits, earlier_labelling = teacher_views(
            labels_file, key, teachers, x_train, args.teacher_views, args.seed + 1, use_bf16, args.teacher_flip,
            deadline)
        teachers = []  # their work is done

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if use_bf16:
        model = model.to(memory_format=torch.channels_last)
    log.info("precision %s", "bf16 autocast, channels-last" if use_bf16 else "fp32")
    t0 = time.time()
    # What is left of the budget for the epochs, after the set-up (labelling teacher views takes minutes).
    epoch_budget = args.stop_after_minutes and max(args.stop_after_minutes - (t0 - run_started) / 60, 1e-6)
    # The time so far: earlier runs' epochs (labelling included), or, before the first epoch, their labelling.
    seconds_before = (history[-1].get("seconds", 0.0) if history else earlier_labelling) + (t0 - views_started)
    for epoch in range(start_epoch, args.epochs):
        if epoch >= args.epochs:  # fitted to the budget
            break
        stop_if_budget_spent(epoch_budget, t0, start_epoch, epoch)
        model.train()
        order = torch.randperm(len(x_train), generator=generator, device=device)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            yb = y_train[idx]
            if kept_images is not None:
                view = torch.randint(0, args.teacher_views, (len(idx),), generator=generator, device=device)
                xb = kept_images[view, idx].float().div_(255.0)
                t_logits = list(kept_logits[view, idx].unbind(1))
            else:
                xb = augment(x_train[idx], generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=args.label_smoothing)
                if teachers:
                    with torch.no_grad():
                        t_logits = ensemble_logits(teachers, xb, args.teacher_flip)
                if teachers or kept_logits is not None:
                    kd = distillation_loss(logits.float(), t_logits, args.kd_temperature)
                    loss = (1 - args.kd_weight) * loss + args.kd_weight * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() if step % 50 == 0 else 0.0
        val_acc = (predict(model, x_val, flip_tta=False).argmax(1) == y_val).float().mean().item()
        val_acc_tta = (predict(model, x_val, flip_tta=True).argmax(1) == y_val).float().mean().item()
        seconds = round(seconds_before + time.time() - t0, 1)
        history.append({"epoch": epoch + 1, "val_acc": val_acc, "val_acc_flip": val_acc_tta, "seconds": seconds})
        log.info("epoch %3d/%d  loss %.3f  validation acc %.4f (flip %.4f)  %.0fs",
                 epoch + 1, args.epochs, total_loss / max(1, steps_per_epoch // 50), val_acc, val_acc_tta,
                 seconds)
        if args.fit_epochs_to_budget and epoch == start_epoch and epochs_asked == args.epochs:
            pace = time.time() - t0  # the first epoch's, the slowest (warm-up), so the fit errs short
            fitted = fitted_epochs(args.epochs, epoch + 1, pace, epoch_budget * 60 * FIT_SHARE - pace)
            if fitted < args.epochs:
                log.info("%d epochs would pass the budget at %.1f s an epoch: fitted to %d, the learning rate "
                         "laid out again for them", args.epochs, pace, fitted)
                args.epochs = fitted
                scheduler = refit_schedule(optimizer, args.lr, fitted, steps_per_epoch, (epoch + 1) * steps_per_epoch)
        save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                         "torch_rng": torch.get_rng_state(),
                         "epoch": epoch + 1, "epochs": args.epochs, "epochs_asked": epochs_asked,
                         "history": history, "spec": args.spec,
                         "dropout": args.dropout, "val_fraction": args.val_fraction,
                         "split_seed": args.split_seed, "teacher_views": args.teacher_views,
                         "teacher_flip": args.teacher_flip}, last)

    summary = {
        "spec": args.spec, "dropout": args.dropout, "labels": list(LABELS),
        "params": count_params(model), "macs": count_macs(args.spec),
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        **({"epochs_asked": epochs_asked} if epochs_asked != args.epochs else {}),
        "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
        "teacher": [str(path) for path in args.teacher] if args.teacher else None,
        "kd_weight": args.kd_weight if args.teacher else None,
        "kd_temperature": args.kd_temperature if args.teacher else None,
        "teacher_views": args.teacher_views or None,
        "teacher_flip": args.teacher_flip if args.teacher else None,
        "teacher_heldout_acc": teacher_acc,
        "val_fraction": args.val_fraction, "split_seed": args.split_seed, "device": str(device),
        "precision": "bf16" if use_bf16 else "fp32",
        "train_images": len(x_train), "heldout_images": len(x_val),
        "heldout_acc": history[-1]["val_acc"], "heldout_acc_flip": history[-1]["val_acc_flip"],
        "train_seconds": history[-1]["seconds"] if history else 0.0,
    }
    model = model.to(memory_format=torch.contiguous_format)
    save_atomically({"model": model.state_dict(), "spec": args.spec, "dropout": args.dropout,
                     "summary": summary}, args.out / "final.pt")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("done: %s", json.dumps(summary))


if __name__ == "__main__":
    main()
