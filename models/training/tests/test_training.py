"""The training scripts (issue 14): the validation protocol, checkpoints that resume exactly, time
budgets, ensemble distillation, and the CPU campaign that runs them session after session.

They train real networks with PyTorch on a small synthetic FER2013-shaped archive (tiny specs, a
few epochs), so they need the training requirements: ``scripts/test-training.sh`` makes a venv
with PyTorch's CPU build and runs them (``make test`` calls it)."""

from __future__ import annotations

import io
import json
import logging
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from moodstream_train import swa, train
from moodstream_train.data import LABELS, load_split, stratified_holdout
from moodstream_train.export import validation_split
from moodstream_train.train import BUDGET_SPENT, distillation_loss, save_atomically

TRAINING = Path(__file__).resolve().parents[1]
FER_NAMES = np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
TINY = ["--spec", "4|8", "--batch", "32", "--threads", "1", "--precision", "fp32"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A FER2013-shaped Training archive: 7 classes (disgust among them) of 60 faces each, every
    class a brighter or darker blob on noise, so that a tiny network learns something."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for fer_index in range(len(FER_NAMES)):
        for _ in range(60):
            face = rng.integers(0, 80, (48, 48)).astype(np.int32)
            face[8 + fer_index * 4 : 24 + fer_index * 4, 12:36] += 100 + 10 * fer_index
            images.append(np.clip(face, 0, 255).astype(np.uint8))
            labels.append(fer_index)
    buffer = io.BytesIO()
    np.savez(buffer, images=np.stack(images), labels=np.array(labels, dtype=np.uint8),
             ids=np.arange(len(labels)), label_names=FER_NAMES)
    folder = tmp_path_factory.mktemp("fer2013")
    with lzma.open(folder / "fer2013_Training.npz.xz", "wb") as fh:
        fh.write(buffer.getvalue())
    return folder


def run_train(data_dir: Path, out: Path, *args: str) -> int:
    """``python -m moodstream_train.train`` in-process; its exit status (0 when it returns)."""
    try:
        train.main(["--data", str(data_dir), "--out", str(out), *TINY, *args])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def test_the_six_classes_are_read_in_moodstream_order_without_disgust(data_dir):
    images, labels = load_split(data_dir, "Training")
    assert images.shape == (360, 48, 48) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(len(LABELS)))
    # FER2013's "happy" (index 3 there) is MoodStream's first label.
    assert LABELS[0] == "happy" and np.count_nonzero(labels == 0) == 60


def test_the_validation_split_is_a_tenth_of_every_class_and_depends_on_the_split_seed_alone(data_dir, tmp_path,
                                                                                           monkeypatch):
    labels = np.repeat(np.arange(6), [100, 50, 40, 30, 20, 11])
    train_idx, val_idx = stratified_holdout(labels, 0.10, 1234)
    assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == len(labels)
    assert [int(np.count_nonzero(labels[val_idx] == c)) for c in range(6)] == [10, 5, 4, 3, 2, 1]
    assert np.array_equal(val_idx, stratified_holdout(labels, 0.10, 1234)[1])

    seen = []
    real = train.stratified_holdout
    monkeypatch.setattr(train, "stratified_holdout", lambda *a: seen.append(a[1:]) or real(*a))
    assert run_train(data_dir, tmp_path / "a", "--epochs", "1", "--seed", "1") == 0
    assert run_train(data_dir, tmp_path / "b", "--epochs", "1", "--seed", "2") == 0
    assert seen == [(0.10, 1234), (0.10, 1234)]  # the network's seed changes, the split does not
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (summary["val_fraction"], summary["split_seed"], summary["heldout_images"]) == (0.10, 1234, 36)


def test_a_run_stopped_at_its_time_budget_resumes_to_exactly_the_weights_of_an_unbroken_run(data_dir, tmp_path):
    assert run_train(data_dir, tmp_path / "whole", "--epochs", "3") == 0
    # A budget smaller than one epoch: the run stops after its first epoch, its state saved.
    assert run_train(data_dir, tmp_path / "cut", "--epochs", "3", "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    assert not (tmp_path / "cut" / "final.pt").exists()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 1
    assert run_train(data_dir, tmp_path / "cut", "--epochs", "3", "--resume") == 0
    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)
    resumed = torch.load(tmp_path / "cut" / "final.pt", weights_only=False)
    assert whole["model"].keys() == resumed["model"].keys()
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    history = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]



def test_a_run_fitted_to_its_budget_shortens_its_schedule_ends_annealed_and_resumes_exactly(data_dir, tmp_path,
                                                                                           monkeypatch):
    assert train.fitted_epochs(60, 1, 10.0, 295.0) == 30  # 29 more fit
    assert train.fitted_epochs(60, 1, 1.0, 1000.0) == 60  # all fit: unchanged
    assert train.fitted_epochs(60, 1, 10.0, 5.0) == 2  # none fits: one more, to anneal to
    with pytest.raises(SystemExit, match="give that too"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "x"), *TINY, "--fit-epochs-to-budget"])

    # A budget of 6 ms: after its first epoch the run fits itself to 2 epochs, then stops at the budget.
    fit = ["--epochs", "40", "--fit-epochs-to-budget"]
    assert run_train(data_dir, tmp_path / "cut", *fit, "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    last = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    steps = last["scheduler"]["total_steps"] // 2
    assert (last["epoch"], last["epochs"], last["epochs_asked"]) == (1, 2, 40)
    assert last["scheduler"]["last_epoch"] == steps  # the new schedule, at the step the run had reached
    # What gpu_run.sh hands on from a run stopped early: the final format, the split and the stop recorded.
    shutil.copytree(tmp_path / "cut", tmp_path / "handed")
    handed = train.final_from_last(tmp_path / "handed")
    assert handed == json.loads((tmp_path / "handed" / "summary.json").read_text())
    assert (handed["stopped_after_epoch"], handed["epochs"], handed["epochs_asked"]) == (1, 2, 40)
    assert (handed["val_fraction"], handed["split_seed"]) == (train.VAL_FRACTION, train.SPLIT_SEED)
    model, _ = train.load_checkpoint(tmp_path / "handed" / "final.pt", torch.device("cpu"))
    assert all(torch.equal(v, last["model"][k]) for k, v in model.state_dict().items())
    # Resumed with the epochs asked, it goes on with the fitted schedule and ends it annealed.
    assert run_train(data_dir, tmp_path / "cut", "--epochs", "40", "--resume") == 0
    last = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert last["scheduler"]["last_epoch"] == last["scheduler"]["total_steps"] == 2 * steps
    # It ends where a run asked for 2 epochs ends: the one-cycle's floor, not near its peak of 0.1.
    assert run_train(data_dir, tmp_path / "two", "--epochs", "2") == 0
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=False)
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(two["optimizer"]["param_groups"][0]["lr"])
    assert last["optimizer"]["param_groups"][0]["lr"] < 0.002
    resumed = torch.load(tmp_path / "cut" / "final.pt", weights_only=False)
    assert (resumed["summary"]["epochs"], resumed["summary"]["epochs_asked"]) == (2, 40)

    # The same fit in one sitting ends on the same weights.
    monkeypatch.setattr(train, "fitted_epochs", lambda asked, done, pace, left: 2)
    assert run_train(data_dir, tmp_path / "whole", *fit, "--stop-after-minutes", "10") == 0
    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_swa_stopped_at_its_time_budget_resumes_to_exactly_the_weights_of_an_unbroken_run(data_dir, tmp_path):
    assert run_train(data_dir, tmp_path / "student", "--epochs", "2") == 0
    start = str(tmp_path / "student" / "final.pt")
    options = ["--data", str(data_dir), "--batch", "32", "--threads", "1", "--precision", "fp32", "--epochs", "3"]
    swa.main([start, "--out", str(tmp_path / "whole"), *options])
    with pytest.raises(SystemExit) as stop:
        swa.main([start, "--out", str(tmp_path / "cut"), *options, "--stop-after-minutes", "0.0001"])
    assert stop.value.code == BUDGET_SPENT and not (tmp_path / "cut" / "final.pt").exists()
    swa.main([start, "--out", str(tmp_path / "cut"), *options, "--resume"])
    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)
    resumed = torch.load(tmp_path / "cut" / "final.pt", weights_only=False)
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert [h["epoch"] for h in resumed["summary"]["swa"]["history"]] == [1, 2, 3]
    # What the exports write into the model's JSON, for `moodstream calibrate` to fit on.
    assert validation_split(resumed["summary"]) == {"dataset": "FER2013 Training", "stratified": True,
                                                    "fraction": 0.10, "seed": 1234, "faces": 36}


def test_a_run_cannot_be_resumed_with_another_schedule(data_dir, tmp_path):
    assert run_train(data_dir, tmp_path / "r", "--epochs", "3", "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    with pytest.raises(SystemExit, match="belongs to a run of 3 epochs"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "r"), *TINY, "--epochs", "5", "--resume"])


def test_an_ensemble_teaches_the_mean_of_its_members_softened_distributions():
    torch.manual_seed(0)
    student, a, b = torch.randn(8, 6), torch.randn(8, 6), torch.randn(8, 6)
    assert torch.allclose(distillation_loss(student, [a, a], 4.0), distillation_loss(student, a, 4.0))
    target = (torch.softmax(a / 4.0, 1) + torch.softmax(b / 4.0, 1)) / 2
    expected = (target * (target.log() - torch.log_softmax(student / 4.0, 1))).sum(1).mean() * 16.0
    assert torch.allclose(distillation_loss(student, [a, b], 4.0), expected, atol=1e-6)


def test_a_student_learns_from_two_teachers_of_its_split_and_refuses_one_of_another(data_dir, tmp_path):
    assert run_train(data_dir, tmp_path / "t1", "--epochs", "1", "--seed", "1") == 0
    # A teacher cut short by its budget hands on its last checkpoint, which carries its split.
    assert run_train(data_dir, tmp_path / "t2", "--epochs", "2", "--seed", "2",
                     "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    assert run_train(data_dir, tmp_path / "s", "--epochs", "1", "--teacher", str(tmp_path / "t1" / "final.pt"),
                     str(tmp_path / "t2" / "last.pt")) == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["teacher"] == [str(tmp_path / "t1" / "final.pt"), str(tmp_path / "t2" / "last.pt")]

    assert run_train(data_dir, tmp_path / "t5", "--epochs", "1", "--val-fraction", "0.05") == 0
    with pytest.raises(SystemExit, match="another validation split"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "s2"), *TINY, "--epochs", "1",
                    "--teacher", str(tmp_path / "t5" / "final.pt")])



def test_probe_measures_views_ensembles_and_soups_on_the_held_out_faces_and_refuses_mixed_splits(data_dir, tmp_path):
    from moodstream_train import probe

    face = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 1, 48, 48)
    assert torch.equal(probe.shifted(face, 1, 0)[..., 1:], face[..., :-1])  # one pixel to the right
    assert torch.equal(probe.shifted(face, 0, -2)[..., :-2, :], face[..., 2:, :])  # two pixels up
    assert torch.equal(probe.zoomed(face, 1.0), face)
    assert probe.zoomed(face, 0.95).shape == probe.zoomed(face, 1.1).shape == face.shape

    for seed in ("1", "2"):
        assert run_train(data_dir, tmp_path / seed, "--epochs", "2", "--seed", seed) == 0
    one, two = tmp_path / "1" / "final.pt", tmp_path / "2" / "final.pt"
    cpu = torch.device("cpu")
    result = probe.probe([one, two], data_dir, cpu)

    images, labels = load_split(data_dir, "Training")
    _, val_idx = stratified_holdout(labels, 0.1, 1234)
    x_val, y_val = train.to_tensor(images[val_idx], cpu), torch.from_numpy(labels[val_idx])
    assert result["validation"] == {"fraction": 0.1, "split_seed": 1234, "faces": len(val_idx)}
    model, _ = train.load_checkpoint(one, cpu)
    for flip, name in ((False, "id"), (True, "flip (2 passes)")):
        expected = round((train.predict(model, x_val, flip_tta=flip).argmax(1) == y_val).float().mean().item(), 4)
        figures = result["checkpoints"][str(one)]
        assert (figures["views"] if name == "id" else figures["view_sets"])[name] == expected
    assert set(result["checkpoints"][str(one)]["views"]) == {v + t for v in probe.VIEWS for t in ("", "+f")}
    assert set(result["ensemble"]) == {"one pass each", "flip each"} and set(result["soup"]) == {"one pass", "flip"}

    # A checkpoint with itself: the ensemble is the checkpoint, the soup has its weights.
    alone = probe.probe([one, one], data_dir, cpu)
    assert alone["ensemble"]["one pass each"] == alone["checkpoints"][str(one)]["views"]["id"]
    soup = probe.uniform_soup([model, model], train.to_tensor(images, cpu))
    for (key, mine), theirs in zip(model.state_dict().items(), soup.state_dict().values(), strict=True):
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(mine, theirs), key

    assert run_train(data_dir, tmp_path / "other", "--epochs", "1", "--val-fraction", "0.05") == 0
    with pytest.raises(SystemExit, match="one and the same validation split"):
        probe.probe([one, tmp_path / "other" / "final.pt"], data_dir, cpu)


def training_views(data_dir: Path, views: int, seed: int = 1235) -> list[torch.Tensor]:
    """The views a run with ``--seed seed-1`` draws of its training images (the default split)."""
    images, labels = load_split(data_dir, "Training")
    train_idx, _ = stratified_holdout(labels, 0.1, 1234)
    return list(train.draw_views(train.to_tensor(images[train_idx], torch.device("cpu")), views, seed))


def test_a_student_on_kept_teacher_views_learns_their_logits_and_resumes_exactly(data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="moodstream_train")
    assert run_train(data_dir, tmp_path / "t1", "--epochs", "1", "--seed", "1") == 0
    assert run_train(data_dir, tmp_path / "t2", "--epochs", "1", "--seed", "2") == 0
    teacher_paths = [tmp_path / "t1" / "final.pt", tmp_path / "t2" / "final.pt"]
    distil = ["--epochs", "3", "--teacher", *map(str, teacher_paths), "--teacher-views", "3"]
    assert run_train(data_dir, tmp_path / "whole", *distil) == 0
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["teacher_views"] == 3

    # The file keeps the logits and each view's digest; the views are drawn again from the seed.
    kept = torch.load(tmp_path / "whole" / "teacher_views.pt", weights_only=False)
    views = training_views(data_dir, 3)
    assert views[0].dtype == torch.uint8 and views[0].shape == (324, 1, 48, 48)  # 360 faces less the 10% held out
    assert kept["digests"] == [train.image_digest(view) for view in views]
    assert all(torch.equal(kept["fingerprints"][i], train.view_fingerprint(view)) for i, view in enumerate(views))
    assert kept["logits"].shape == (3, 324, 2, 6)
    assert not torch.equal(views[0], views[1])  # each view is its own augmentation
    for index, path in enumerate(teacher_paths):  # the logits are each teacher's on the very image kept
        teacher, _ = train.load_checkpoint(path, torch.device("cpu"))
        with torch.no_grad():
            assert torch.allclose(teacher.eval()(views[2].float() / 255.0), kept["logits"][2, :, index], atol=1e-5)

    # A budget spent while labelling (after the first view) and then in the first epoch: every run
    # keeps what it labelled, the next reads it back, and the weights are the unbroken run's.
    cut = [*distil, "--resume", "--stop-after-minutes", "0.0001"]
    assert run_train(data_dir, tmp_path / "cut", *cut) == BUDGET_SPENT
    assert "time budget reached after 1 of 3 views" in caplog.text
    caplog.clear()
    assert run_train(data_dir, tmp_path / "cut", *cut) == BUDGET_SPENT
    assert "1 of 3 read back" in caplog.text and "time budget reached after 2 of 3 views" in caplog.text
    caplog.clear()
    assert run_train(data_dir, tmp_path / "cut", *cut) == BUDGET_SPENT  # views done; one epoch, then the budget
    assert "2 of 3 read back" in caplog.text and "time budget of 0 min reached after epoch 1" in caplog.text
    caplog.clear()
    assert run_train(data_dir, tmp_path / "cut", *distil, "--resume") == 0
    assert "3 of 3 read back" in caplog.text and "labelled" not in caplog.text
    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "cut" / "final.pt", weights_only=False)["model"]
    for name, tensor in whole.items():
        assert torch.equal(tensor, resumed[name]), name
    assert torch.equal(torch.load(tmp_path / "cut" / "teacher_views.pt", weights_only=False)["logits"],
                       kept["logits"])

    # The same view drawn on a CPU that rounds a few pixels the other way: another digest, its images'
    # sums a few grey levels apart. Its labels are reused.
    rounded = {**kept, "digests": list(kept["digests"]), "fingerprints": list(kept["fingerprints"])}
    rounded["digests"][1] = "0" * 64
    rounded["fingerprints"][1] = kept["fingerprints"][1] + torch.randint(-3, 4, kept["fingerprints"][1].shape,
                                                                         dtype=torch.int32)
    save_atomically(rounded, tmp_path / "whole" / "teacher_views.pt")
    caplog.clear()
    assert run_train(data_dir, tmp_path / "whole", *distil) == 0
    assert "view 2 differs from the image kept only by rounding (an image's sum at most 3 grey levels apart)" \
        in caplog.text
    assert "3 of 3 read back" in caplog.text and "labelled" not in caplog.text

    # A view that does not come out as the image kept (another augmentation, say: its sums far from the
    # kept ones) is labelled again, with the rest.
    rounded["fingerprints"][1] = kept["fingerprints"][2]
    save_atomically(rounded, tmp_path / "whole" / "teacher_views.pt")
    caplog.clear()
    assert run_train(data_dir, tmp_path / "whole", *distil) == 0
    assert "view 2 is not the image kept: labelling it and the rest again" in caplog.text
    assert "teacher views: 3 of 3 labelled" in caplog.text and "teacher views: 1 of 3 labelled" not in caplog.text
    relabelled = torch.load(tmp_path / "whole" / "teacher_views.pt", weights_only=False)
    assert relabelled["digests"] == kept["digests"] and torch.equal(relabelled["fingerprints"][1],
                                                                    kept["fingerprints"][1])

    # A file kept before fingerprints: only the same image bit for bit counts, and a run that reads
    # every view back adds their fingerprints to it.
    old_style = {key: value for key, value in kept.items() if key != "fingerprints"}
    save_atomically(old_style, tmp_path / "whole" / "teacher_views.pt")
    caplog.clear()
    assert run_train(data_dir, tmp_path / "whole", *distil) == 0
    assert "3 of 3 read back" in caplog.text and "fingerprints added" in caplog.text
    upgraded = torch.load(tmp_path / "whole" / "teacher_views.pt", weights_only=False)
    assert all(torch.equal(upgraded["fingerprints"][i], kept["fingerprints"][i]) for i in range(3))
    assert torch.equal(upgraded["logits"], kept["logits"])
    old_style["digests"] = [kept["digests"][0], "0" * 64, kept["digests"][2]]
    save_atomically(old_style, tmp_path / "whole" / "teacher_views.pt")
    caplog.clear()
    assert run_train(data_dir, tmp_path / "whole", *distil) == 0
    assert "view 2 is not the image kept (kept without a fingerprint, so only the same image bit for bit counts)" \
        in caplog.text

    # Another student of the same teachers, seed and split reads the same labels back.
    caplog.clear()
    assert run_train(data_dir, tmp_path / "wider", *distil, "--spec", "8|16", "--teacher-views-file",
                     str(tmp_path / "cut" / "teacher_views.pt")) == 0
    assert "3 of 3 read back" in caplog.text and "labelled" not in caplog.text
    assert not (tmp_path / "wider" / "teacher_views.pt").exists()

    # Views kept for other teachers are not reused: another teacher set labels its own.
    caplog.clear()
    assert run_train(data_dir, tmp_path / "whole", "--epochs", "1", "--teacher", str(teacher_paths[0]),
                     "--teacher-views", "3") == 0
    assert "was labelled by other teachers or for other data: labelling again" in caplog.text
    assert torch.load(tmp_path / "whole" / "teacher_views.pt", weights_only=False)["logits"].shape == (3, 324, 1, 6)


def test_bf16_labels_are_kept_as_bfloat16_and_a_resumed_run_still_ends_on_the_unbroken_runs_weights(data_dir,
                                                                                                   tmp_path):
    bf16 = [a for a in TINY if a not in ("--precision", "fp32")] + ["--precision", "bf16"]
    assert run_train(data_dir, tmp_path / "t", "--epochs", "1") == 0
    distil = [*bf16, "--epochs", "2", "--teacher", str(tmp_path / "t" / "final.pt"), "--teacher-views", "2"]

    def run(out: Path, *more: str) -> int:
        try:
            train.main(["--data", str(data_dir), "--out", str(out), *distil, *more])
        except SystemExit as stop:
            return stop.code
        return 0

    assert run(tmp_path / "whole") == 0
    assert run(tmp_path / "cut", "--stop-after-minutes", "0.0001") == BUDGET_SPENT  # after one view
    assert run(tmp_path / "cut", "--resume") == 0
    kept = torch.load(tmp_path / "cut" / "teacher_views.pt", weights_only=False)
    assert kept["logits"].dtype == torch.bfloat16 and kept["logits"].shape == (2, 324, 1, 6)
    whole = torch.load(tmp_path / "whole" / "final.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "cut" / "final.pt", weights_only=False)["model"]
    for name, tensor in whole.items():
        assert torch.equal(tensor, resumed[name]), name


def test_teacher_views_need_a_teacher_and_a_run_resumes_only_with_its_own(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="one or more --teacher"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "s"), *TINY, "--teacher-views", "4"])
    assert run_train(data_dir, tmp_path / "t", "--epochs", "1") == 0
    distil = ["--epochs", "3", "--teacher", str(tmp_path / "t" / "final.pt")]
    assert run_train(data_dir, tmp_path / "s", *distil, "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    with pytest.raises(SystemExit, match="was trained with --teacher-views 0"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "s"), *TINY, *distil, "--teacher-views", "2",
                    "--resume"])


def test_with_teacher_flip_each_teacher_labels_the_mirror_image_too(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="--teacher-flip needs one or more --teacher"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "s"), *TINY, "--teacher-flip"])
    assert run_train(data_dir, tmp_path / "t", "--epochs", "1") == 0
    teacher_path = tmp_path / "t" / "final.pt"
    distil = ["--epochs", "2", "--teacher", str(teacher_path), "--teacher-views", "2", "--teacher-flip"]
    assert run_train(data_dir, tmp_path / "views", *distil) == 0
    summary = json.loads((tmp_path / "views" / "summary.json").read_text())
    assert summary["teacher_flip"] is True
    # What the student was taught, scored: the teacher's own validation accuracy with flip averaging.
    teacher_summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["teacher_heldout_acc"] == teacher_summary["heldout_acc_flip"]
    kept = torch.load(tmp_path / "views" / "teacher_views.pt", weights_only=False)
    assert kept["logits"].shape == (2, 324, 2, 6)  # the teacher on the view, then on its mirror image
    teacher, _ = train.load_checkpoint(teacher_path, torch.device("cpu"))
    view = training_views(data_dir, 2)[1].float() / 255.0
    with torch.no_grad():
        assert torch.allclose(teacher.eval()(view), kept["logits"][1, :, 0], atol=1e-5)
        assert torch.allclose(teacher(view.flip(3)), kept["logits"][1, :, 1], atol=1e-5)
        assert not torch.allclose(kept["logits"][1, :, 0], kept["logits"][1, :, 1], atol=1e-3)

    # Without kept views the teacher labels every step's mirror image; a resume keeps to the run's choice.
    on_the_fly = ["--epochs", "3", "--teacher", str(teacher_path), "--teacher-flip"]
    assert run_train(data_dir, tmp_path / "steps", *on_the_fly, "--stop-after-minutes", "0.0001") == BUDGET_SPENT
    with pytest.raises(SystemExit, match="was trained with --teacher-flip"):
        train.main(["--data", str(data_dir), "--out", str(tmp_path / "steps"), *TINY, *on_the_fly[:4], "--resume"])
    assert run_train(data_dir, tmp_path / "steps", *on_the_fly, "--resume") == 0
    assert json.loads((tmp_path / "steps" / "summary.json").read_text())["teacher_flip"] is True


def test_a_checkpoint_write_cut_short_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomically({"epoch": 1}, path)

    def torn_save(state, target):  # the disk fills, or the run is killed, half-way through
        Path(target).write_bytes(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError):
        save_atomically({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"epoch": 1}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_precision_asked_for_is_used_and_the_model_saved_loads_as_usual(data_dir, tmp_path, precision):
    args = [a for a in TINY if a not in ("--precision", "fp32")]
    train.main(["--data", str(data_dir), "--out", str(tmp_path), *args, "--epochs", "1", "--precision", precision])
    assert json.loads((tmp_path / "summary.json").read_text())["precision"] == precision
    model, _ = train.load_checkpoint(tmp_path / "final.pt", torch.device("cpu"))
    probabilities = torch.softmax(model.eval()(torch.rand(2, 1, 48, 48)), 1)
    assert probabilities.shape == (2, 6) and torch.allclose(probabilities.sum(1), torch.ones(2))


def test_the_cpu_campaign_runs_its_steps_in_order_and_a_second_call_finds_them_done(data_dir, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATA": str(data_dir), "CAMPAIGN": str(tmp_path / "campaign"),
           "TEACHER": "4|8", "STUDENT": "4", "STUDENT_AB": "4,4", "CAMERA": "2|4", "TEACHER_EPOCHS": "2",
           "STUDENT_EPOCHS": "1", "PATIENT_EPOCHS": "2", "SWA_EPOCHS": "1", "TEACHER_VIEWS": "2",
           "BUDGET_MINUTES": "30",
           "EXTRA_ARGS": "--batch 32 --threads 1 --precision fp32"}
    first = subprocess.run(["bash", str(TRAINING / "cpu_campaign.sh")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    steps = ["teacher_a", "student_a", "student_a_swa", "teacher_b", "student_ab", "student_ab_swa", "student_ab160",
             "student_ab160_swa", "camera_fresh"]
    assert [line.split(":")[0] for line in first.stdout.splitlines() if line.endswith("log.txt")] == steps
    for step in steps:
        assert (tmp_path / "campaign" / step / "final.pt").is_file()
        assert not (tmp_path / "campaign" / step / "last.pt").exists()  # the optimizer state is dropped
        assert not (tmp_path / "campaign" / step / "teacher_views.pt").exists()  # and the students' views
    student = json.loads((tmp_path / "campaign" / "student_ab" / "summary.json").read_text())
    assert [Path(t).parent.name for t in student["teacher"]] == ["teacher_a", "teacher_b"]
    assert student["teacher_flip"] is True and student["spec"] == "4,4"
    # The ensemble's labels stay, for later students.
    assert torch.load(tmp_path / "campaign" / "teachers_ab_views.pt", weights_only=False)["logits"].shape[:3] == (
        2, 324, 4)
    assert json.loads((tmp_path / "campaign" / "student_a" / "summary.json").read_text())["teacher_flip"] is False
    for name in ("student_a", "student_ab", "student_ab160"):
        assert json.loads((tmp_path / "campaign" / name / "summary.json").read_text())["teacher_views"] == 2
        averaged = json.loads((tmp_path / "campaign" / f"{name}_swa" / "summary.json").read_text())
        assert Path(averaged["swa"]["from"]).parent.name == name
    # The patient student: student AB's network and the ensemble's kept labels, twice the epochs.
    patient = json.loads((tmp_path / "campaign" / "student_ab160" / "summary.json").read_text())
    assert patient["epochs"] == 2 and patient["spec"] == "4,4" and patient["teacher"] == student["teacher"]
    assert "read back from" in (tmp_path / "campaign" / "student_ab160" / "log.txt").read_text()
    # The camera's network, distilled from the patient student after SWA on every step's augmentation.
    camera = json.loads((tmp_path / "campaign" / "camera_fresh" / "summary.json").read_text())
    assert camera["spec"] == "2|4" and camera["dropout"] == 0.1 and camera["teacher_flip"] is True
    assert [Path(t).parent.name for t in camera["teacher"]] == ["student_ab160_swa"]
    assert camera["teacher_views"] is None
    candidates = ["student_a_swa", "student_ab_swa", "student_ab160_swa"]
    scores = {name: json.loads((tmp_path / "campaign" / name / "summary.json").read_text())["heldout_acc"]
              for name in candidates}
    chosen = max(candidates, key=lambda name: (scores[name], -candidates.index(name)))
    assert (f"campaign complete: the validation split chooses {chosen}; INT8_FLIP_TTA=1 bash models/training/adopt.sh "
            f"{tmp_path / 'campaign' / chosen / 'final.pt'}") in first.stdout, (scores, first.stdout)
    second = subprocess.run(["bash", str(TRAINING / "cpu_campaign.sh")], env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0 and "campaign complete" in second.stdout and "log.txt" not in second.stdout


def test_the_campaign_stops_at_its_budget_and_says_how_to_go_on(data_dir, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "DATA": str(data_dir), "CAMPAIGN": str(tmp_path / "campaign"),
           "BUDGET_MINUTES": "4"}
    result = subprocess.run(["bash", str(TRAINING / "cpu_campaign.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert "budget spent before teacher_a: call again to go on" in result.stdout
    assert not (tmp_path / "campaign").exists()


def test_the_gpu_run_trains_an_ensemble_and_its_students_and_brings_back_what_fits(data_dir, tmp_path):
    """gpu_run.sh on the CPU with tiny networks: four phases, and a student asked for an endless
    schedule fitted to its budget and handed on, in train.py's final format, to the averaging."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DATA": str(data_dir), "OUT": str(out),
           "RUNS": str(tmp_path / "runs"),
           "TEACHER": "4|8", "STUDENT": "4,4", "CAMERA": "2|4", "TEACHER_EPOCHS": "2", "STUDENT_EPOCHS": "1",
           "PATIENT_EPOCHS": "100000", "CAMERA_EPOCHS": "1", "SWA_EPOCHS": "1", "TEACHER_VIEWS": "2",
           "TEACHER_SECONDS": "120", "STUDENT_SECONDS": "27", "SWA_SECONDS": "120", "SEEDS": "11 12",
           "EXTRA_ARGS": "--batch 32 --threads 1 --precision fp32"}
    result = subprocess.run(["bash", str(TRAINING / "gpu_run.sh")], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["candidates.tar", "teacher_11.pt", "teacher_12.pt"]
    teacher = torch.load(out / "teacher_11.pt", weights_only=False)
    assert "optimizer" not in teacher and teacher["summary"]["seed"] == 11
    assert all(v.dtype == torch.float16 for v in teacher["model"].values() if v.is_floating_point())
    back = tmp_path / "back"
    subprocess.run(["tar", "-C", str(tmp_path), "-xf", str(out / "candidates.tar"), "--one-top-level=back"],
                   check=True)
    names = {p.name for p in back.iterdir()}
    assert {"student_160a_swa.pt", "student_160b_swa.pt", "student_240_swa.pt", "camera.pt",
            "student_240.summary.json", "student_240_swa.log", "teacher_12.log"} <= names, names
    # The endless schedule fitted itself to the budget after its first epoch; under load it may still
    # be stopped by the budget, and is then handed on from its last checkpoint.
    patient = json.loads((back / "student_240.summary.json").read_text())
    assert patient["epochs_asked"] == 100000 and 2 <= patient["epochs"] < 100000
    if "stopped_after_epoch" in patient:
        assert 1 <= patient["stopped_after_epoch"] < patient["epochs"]
    assert "fitted to" in (back / "student_240.log").read_text()
    assert (patient["val_fraction"], patient["split_seed"]) == (train.VAL_FRACTION, train.SPLIT_SEED)
    averaged = json.loads((back / "student_240_swa.summary.json").read_text())
    assert Path(averaged["swa"]["from"]).parent.name == "student_240"
    assert averaged["val_fraction"] == train.VAL_FRACTION  # the split of the student, not swa.py's default
    student = json.loads((back / "student_160a.summary.json").read_text())
    assert [Path(t).parent.name for t in student["teacher"]] == ["teacher_11", "teacher_12"]
    assert student["teacher_flip"] is True and student["teacher_views"] == 2 and student["spec"] == "4,4"
    camera = json.loads((back / "camera.summary.json").read_text())
    assert camera["spec"] == "2|4" and camera["teacher_views"] is None and camera["dropout"] == 0.1
    net = torch.load(back / "student_160b_swa.pt", weights_only=False)
    from moodstream_train.nets import EmotionNet
    EmotionNet(net["spec"], dropout=net["dropout"]).load_state_dict(net["model"])



def test_handback_brings_slim_teachers_and_the_best_finished_form_of_each_student(data_dir, tmp_path):
    from moodstream_train import handback

    assert run_train(data_dir, tmp_path / "trained", "--epochs", "1") == 0
    runs = tmp_path / "runs"
    for run in ("teacher_11", "student_160a", "student_160a_swa", "student_160b", "camera"):
        (runs / run).mkdir(parents=True)
        shutil.copy(tmp_path / "trained" / "final.pt", runs / run / "final.pt")
        shutil.copy(tmp_path / "trained" / "summary.json", runs / run / "summary.json")
        (runs / f"{run}.log").write_text(f"{run} log\n")
    (runs / "student_160b_swa").mkdir()  # its averaging was killed before it wrote anything
    names = handback.hand_back(runs, tmp_path / "out", ["11", "12"])

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["candidates.tar", "teacher_11.pt"]
    assert {"student_160a_swa.pt", "student_160b.pt", "camera.pt", "student_160b.summary.json",
            "teacher_11.log"} <= set(names)
    assert "student_160a.pt" not in names and "student_160b_swa.pt" not in names and "student_240.pt" not in names
    with tarfile.open(tmp_path / "out" / "candidates.tar") as tar:
        assert sorted(tar.getnames()) == names
        (tmp_path / "student_160b.pt").write_bytes(tar.extractfile("student_160b.pt").read())
    slim = torch.load(tmp_path / "student_160b.pt", weights_only=False)
    assert "optimizer" not in slim and set(slim) == {"model", "spec", "dropout", "summary"}
    assert all(v.dtype == torch.float16 for v in slim["model"].values() if v.is_floating_point())
    model, _ = train.load_checkpoint(tmp_path / "student_160b.pt", torch.device("cpu"))
    full, _ = train.load_checkpoint(tmp_path / "trained" / "final.pt", torch.device("cpu"))
    for (key, mine), theirs in zip(model.state_dict().items(), full.state_dict().values(), strict=True):
        assert torch.allclose(mine, theirs.half().to(theirs.dtype)), key


def test_gpu_stage_takes_the_big_files_out_of_what_travels_and_puts_them_back(tmp_path):
    """gpu_stage.sh in a throwaway repository: the files over the size limit leave the index (not
    the disk), the archive goes to .gpu/, and --undo leaves the index and exclude file as they were."""
    repo, data = tmp_path / "repo", tmp_path / "data"
    (repo / "models" / "training").mkdir(parents=True)
    data.mkdir()
    (data / "fer2013_Training.npz.xz").write_bytes(b"x" * 2000)
    (repo / "models" / "training" / "gpu_stage.sh").write_text((TRAINING / "gpu_stage.sh").read_text())
    (repo / "big.pt").write_bytes(b"b" * 50000)
    (repo / "small.py").write_text("print()\n")
    (repo / ".gitignore").write_text(".gpu/\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    exclude = repo / ".git" / "info" / "exclude"
    exclude_before = exclude.read_text() if exclude.exists() else ""
    env = {**os.environ, "DATA": str(data), "BIG_BYTES": "20000", "LIMIT_BYTES": "100000"}
    stage = ["bash", str(repo / "models" / "training" / "gpu_stage.sh")]

    staged = subprocess.run(stage, env=env, capture_output=True, text=True)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    tracked = subprocess.run([*git, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    untracked = subprocess.run([*git, "ls-files", "--others", "--exclude-standard"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert "big.pt" not in tracked + untracked and "small.py" in tracked
    assert (repo / "big.pt").stat().st_size == 50000 and (repo / ".gpu" / "fer2013_Training.npz.xz").is_file()
    again = subprocess.run(stage, env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "already staged" in again.stderr

    undone = subprocess.run([*stage, "--undo"], env=env, capture_output=True, text=True)
    assert undone.returncode == 0 and "restored 1 files" in undone.stdout
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""
    assert (exclude.read_text() if exclude.exists() else "") == exclude_before

    # Over the limit even when staged: it says so and undoes itself.
    over = subprocess.run(stage, env={**env, "LIMIT_BYTES": "100"}, capture_output=True, text=True)
    assert over.returncode == 1 and "still over the device's limit" in over.stderr
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout == ""
    # And it will not stage over changes already in the index.
    (repo / "small.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "small.py"], check=True)
    refused = subprocess.run(stage, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "staged changes" in refused.stderr
