"""Checkpoint selection without target labels: `val/select` and the epoch-wide head MI."""

from __future__ import annotations

import csv
import math

import numpy as np
import torch

from hackrobust.metrics import HeadMutualInformation
from hackrobust.metrics.head_agreement import mean_pairwise, pairwise_mutual_information
from hackrobust.train import train

from helpers import compose_train


def test_epoch_metric_equals_the_mutual_information_of_all_rows_at_once():
    probs = torch.rand(50, 3, 4).softmax(dim=-1)
    metric = HeadMutualInformation(num_heads=3, num_classes=4)
    for chunk in probs.split(7):  # uneven batches
        metric.update(chunk)
    expected = mean_pairwise(pairwise_mutual_information(probs.double()))
    assert math.isclose(metric.compute().item(), expected.item(), rel_tol=1e-5)


def test_identical_heads_share_all_information_and_independent_heads_none():
    a = torch.tensor([0, 1, 0, 1])
    b = torch.tensor([0, 0, 1, 1])
    same = HeadMutualInformation(2, 2)
    same.update(torch.stack([torch.eye(2)[a], torch.eye(2)[a]], dim=1))
    independent = HeadMutualInformation(2, 2)
    independent.update(torch.stack([torch.eye(2)[a], torch.eye(2)[b]], dim=1))
    assert math.isclose(same.compute().item(), math.log(2), rel_tol=1e-5)
    assert abs(independent.compute().item()) < 1e-6


def test_selection_reads_target_inputs_without_an_answer_key(tmp_path):
    """No y_val.npy: the target inputs still score diversity, and the kept epoch is val/select's
    minimum."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    y = rng.integers(0, 2, 120)
    np.save(folder / "X_labeled.npy", rng.normal(size=(120, 8)) + y[:, None])
    np.save(folder / "y_labeled.npy", y)
    np.save(folder / "X_unlabeled.npy", rng.normal(size=(160, 8)))
    np.save(folder / "X_val.npy", rng.normal(size=(60, 8)))
    cfg = compose_train(
        [
            "dataset=hackathon_dir",
            f"dataset.path={folder}",
            "method=divdis",
            "trainer.max_epochs=3",
            "logger=csv",
        ],
        tmp_path / "run",
    )
    metrics, _ = train(cfg)
    assert "val/select" in metrics and "val/target_mutual_information" in metrics
    assert "target/acc" not in metrics  # nothing is scored without labels

    with next((tmp_path / "run").rglob("metrics.csv")).open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/select")]
    scores = {int(r["epoch"]): float(r["val/select"]) for r in rows}
    assert len(scores) == 3
    kept = [p.name for p in (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()  # to finish from
    assert kept == [f"epoch_{min(scores, key=scores.get):03d}.ckpt"]


def _write_unscored_set(folder, rng):
    y = rng.integers(0, 2, 120)
    folder.mkdir()
    np.save(folder / "X_labeled.npy", rng.normal(size=(120, 8)) + y[:, None])
    np.save(folder / "y_labeled.npy", y)
    np.save(folder / "X_unlabeled.npy", rng.normal(size=(160, 8)))
    np.save(folder / "X_val.npy", rng.normal(size=(60, 8)))


def test_last_fitting_keeps_the_last_epoch_no_head_fell_from_its_best(tmp_path):
    """`callbacks=last_fitting`: the kept epoch is the last one whose held-out accuracies are all
    within the tolerance of each head's best so far, as read back from the logged accuracies."""
    _write_unscored_set(tmp_path / "data", np.random.default_rng(0))
    cfg = compose_train(
        [
            "dataset=hackathon_dir",
            f"dataset.path={tmp_path / 'data'}",
            "method=divdis",
            "trainer.max_epochs=4",
            "logger=csv",
            "callbacks=last_fitting",
        ],
        tmp_path / "run",
    )
    metrics, _ = train(cfg)
    assert "val/select_last_fitting" in metrics

    with next((tmp_path / "run").rglob("metrics.csv")).open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/acc_head0")]
    accuracy = np.array([[float(r["val/acc_head0"]), float(r["val/acc_head1"])] for r in rows])
    best = np.maximum.accumulate(accuracy, axis=0)
    fitting = [e for e in range(len(rows)) if (accuracy[e] >= best[e] - 0.02 - 1e-6).all()]
    kept = [p.name for p in (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()  # to finish from
    assert kept == [f"epoch_{max(fitting):03d}.ckpt"]


def test_last_fitting_score_is_minus_the_epoch_until_a_head_falls_below_its_best():
    from types import SimpleNamespace

    from hackrobust.methods import ERM

    method = ERM(
        model=lambda input_shape, num_classes, num_heads: torch.nn.Linear(1, 1),
        optimizer=torch.optim.SGD,
        input_shape=(1,),
        num_classes=2,
        num_heads=2,
    )
    logged = {}
    method.log = lambda name, value, **_: logged.__setitem__(name, value)
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    scores = []
    # Head 1's held-out accuracy per epoch: 0.9, 1.0, 0.9 (0.1 below its best), 1.0.
    for epoch, right in enumerate([9, 10, 9, 10]):
        method._trainer = SimpleNamespace(current_epoch=epoch)
        wrong = torch.arange(10) >= right
        logits = torch.stack([torch.eye(2)[y], torch.eye(2)[torch.where(wrong, 1 - y, y)]], 1)
        for head, metric in enumerate(method.heldout_accuracy):
            metric.update(logits[:, head], y)
        method._log_last_fitting()
        scores.append(logged["val/select_last_fitting"])
        for metric in method.heldout_accuracy:
            metric.reset()
    assert scores == [0.0, -1.0, math.inf, -3.0]
    assert method.best_heldout_accuracy.tolist() == [1.0, 1.0]
    checkpoint = {}
    method.on_save_checkpoint(checkpoint)  # a resumed run keeps the bests
    method.best_heldout_accuracy = None
    method.on_load_checkpoint(checkpoint)
    assert method.best_heldout_accuracy.tolist() == [1.0, 1.0]
