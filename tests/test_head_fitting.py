"""`callbacks=chosen_head_fitting`: the chosen head's last epoch that still fits the held-out rows."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from hackrobust.reveal import OracleRevealer
from hackrobust.submission import read_submission
from hackrobust.train import train
from hackrobust.training.head_fitting import HeadFittingCheckpoints, last_fitting_epoch

from helpers import compose_train, offline_overrides

# Held-out accuracies per epoch of two DivDis runs on the real sets (seed 0, 3 conv blocks),
# the cases the rule is for: mnist_sum_bis's chosen head is noisy on 120 held-out rows while its
# target accuracy climbs to the last epoch; the low-mix set's digit head stops fitting after 4.
SUM_BIS_CHOSEN = [0.958, 0.983, 0.950, 0.992, 0.975, 0.942, 0.950, 0.967, 0.967, 0.958]
SUM_BIS_OTHER = [0.967, 0.975, 0.967, 0.917, 0.942, 0.933, 0.942, 0.908, 0.942, 0.925]
LOW_MIX_DIGIT = [0.983, 0.975, 1.0, 0.917, 0.983, 0.85, 0.817, 0.875, 0.775, 0.817]


def _history(*heads):
    return {epoch: list(accuracies) for epoch, accuracies in enumerate(zip(*heads, strict=True))}


def test_each_head_keeps_its_own_last_fitting_epoch():
    history = _history(SUM_BIS_CHOSEN, SUM_BIS_OTHER)
    assert last_fitting_epoch(history, 0, 0.05) == 9  # every epoch within 0.05 of its best
    # A tighter tolerance reads the noise as a fall; asking both heads to fit at 0.02, as
    # `val/select_last_fitting` does, stopped at epoch 1 (target 0.925 against 0.962 at epoch 9).
    assert last_fitting_epoch(history, 0, 0.02) == 4
    assert last_fitting_epoch(history, 1, 0.02) == 2
    assert last_fitting_epoch(_history(LOW_MIX_DIGIT), 0, 0.05) == 4
    assert last_fitting_epoch({}, 0, 0.05) is None


def test_a_mixed_hypothesis_needs_every_head_to_fit():
    # Class-pair switches (hypotheses 2 and up beside two heads) read both heads on some rows.
    callback = HeadFittingCheckpoints("unused", tolerance=0.02)
    callback.history = _history(SUM_BIS_CHOSEN, SUM_BIS_OTHER)
    assert callback.heads_read_by(0) == [0] and callback.heads_read_by(5) == [0, 1]
    assert (callback.selected_epoch(0), callback.selected_epoch(1)) == (4, 2)
    assert callback.selected_epoch(2) == last_fitting_epoch(callback.history, [0, 1], 0.02) == 1


def test_accuracy_exactly_at_the_tolerance_still_fits():
    # 113/120 against 119/120: exactly 0.05 below, up to floating point.
    assert last_fitting_epoch(_history([119 / 120, 113 / 120]), 0, 0.05) == 1


class _Trainer:
    sanity_checking = False
    is_global_zero = True

    def __init__(self, epoch, metrics):
        self.current_epoch, self.callback_metrics = epoch, metrics

    def save_checkpoint(self, path, weights_only=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": self.current_epoch}, path)


class _Module:
    num_heads = 2

    def selection_ready(self):
        return True


def test_weights_are_kept_only_where_some_head_may_still_be_selected(tmp_path):
    callback = HeadFittingCheckpoints(tmp_path, tolerance=0.05)
    accuracies = [(0.9, 0.9), (1.0, 0.9), (0.8, 0.95), (0.8, 0.7), (0.8, 0.7)]
    for epoch, (a, b) in enumerate(accuracies):
        metrics = {"val/acc_head0": torch.tensor(a), "val/acc_head1": torch.tensor(b)}
        callback.on_validation_end(_Trainer(epoch, metrics), _Module())
    # Head 0 last fit at epoch 1, head 1 at epoch 2, both together at epoch 1 too (epoch 0 is
    # dropped); epoch 4 is the newest, epoch 3 no hypothesis can be selected at any more.
    assert [callback.selected_epoch(h) for h in range(3)] == [1, 2, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch_001.ckpt", "epoch_002.ckpt", "epoch_004.ckpt"
    ]  # fmt: skip
    restored = HeadFittingCheckpoints(tmp_path)
    restored.load_state_dict(callback.state_dict())  # a resumed run keeps the history
    assert restored.history == callback.history and restored.last_epoch == 4


def test_a_resumed_run_reads_the_earlier_runs_weights_and_never_deletes_them(tmp_path):
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    callback = HeadFittingCheckpoints(first, tolerance=0.05)
    for epoch, (a, b) in enumerate([(0.9, 0.9), (1.0, 0.9), (0.8, 0.95)]):
        metrics = {"val/acc_head0": torch.tensor(a), "val/acc_head1": torch.tensor(b)}
        callback.on_validation_end(_Trainer(epoch, metrics), _Module())
    later = HeadFittingCheckpoints(resumed, tolerance=0.05)
    later.load_state_dict(callback.state_dict())
    assert later.path(1) == (first / "epoch_001.ckpt").resolve()  # head 0's epoch, kept there

    for epoch in (3, 4):  # the resumed run trains on; every head fits again, as well as ever
        metrics = {"val/acc_head0": torch.tensor(1.0), "val/acc_head1": torch.tensor(0.95)}
        later.on_validation_end(_Trainer(epoch, metrics), _Module())
    assert [later.selected_epoch(h) for h in range(3)] == [4, 4, 4]
    assert later.path(4) == resumed / "epoch_004.ckpt" and sorted(later.saved) == [4]
    assert sorted(p.name for p in first.iterdir()) == ["epoch_001.ckpt", "epoch_002.ckpt"]
    assert sorted(p.name for p in resumed.iterdir()) == ["epoch_004.ckpt"]
    with pytest.raises(FileNotFoundError, match="epoch 1 were not kept"):
        later.path(1)


def test_a_run_predicts_with_the_chosen_heads_epoch_from_the_labels_it_revealed(
    tmp_path, monkeypatch
):
    """Forced to an earlier epoch, the run predicts with those weights, chooses the head again
    there from the labels already revealed (no new reveal), and says which epoch it used."""
    monkeypatch.setattr(
        HeadFittingCheckpoints, "selected_epoch", lambda self, head: min(self.history)
    )
    fetched = []
    fetch = OracleRevealer._fetch
    monkeypatch.setattr(
        OracleRevealer, "_fetch", lambda self, d: fetched.append(d) or fetch(self, d)
    )
    overrides = [
        *offline_overrides("toy", tmp_path),
        "method=divdis",
        "query=oracle",
        "callbacks=chosen_head_fitting",
        "trainer.max_epochs=3",
        "logger=csv",
    ]
    metrics, objects = train(compose_train(overrides, tmp_path))

    assert metrics["selection/epoch"] == 0
    callback = next(
        c for c in objects["trainer"].callbacks if isinstance(c, HeadFittingCheckpoints)
    )
    assert sorted(callback.history) == [0, 1, 2]
    method, datamodule = objects["method"], objects["datamodule"]
    weights = torch.load(callback.path(0), weights_only=False)["state_dict"]
    state = method.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in weights.items() if k != "chosen_head")
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert len(fetched) == len(set(fetched)) == report["labels_revealed"] <= 5
    # The CSV is the chosen head's prediction with epoch 0's weights (revealed rows aside).
    probs = np.load(tmp_path / "predictions.npz")["probs"]
    labels = read_submission(tmp_path / "submission.csv")
    predicted = datamodule.label_values[probs[:, int(method.chosen_head)].argmax(-1)]
    revealed = {q["datum_id"] for q in report["revealed"]}
    assert revealed == set(fetched)  # the second choice read the labels the first revealed
    rows = [i for i in range(len(labels)) if i not in revealed]
    assert (labels[rows] == predicted[rows]).all()
    with torch.no_grad():
        method.eval()
        x = datamodule.target_set.tensors["x"]
        expected = method(x).float().softmax(-1).numpy()
    np.testing.assert_allclose(probs[:, : method.num_heads], expected, atol=1e-5)


@pytest.mark.parametrize("tolerance", [0.0, 0.05])
def test_the_recorded_history_is_the_logged_held_out_accuracy(tmp_path, tolerance):
    overrides = [
        *offline_overrides("toy", tmp_path),
        "method=divdis",
        "callbacks=chosen_head_fitting",
        f"callbacks.head_fitting.tolerance={tolerance}",
        "trainer.max_epochs=3",
        "logger=csv",
    ]
    metrics, objects = train(compose_train(overrides, tmp_path))
    with next(tmp_path.rglob("metrics.csv")).open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/acc_head0")]
    logged = {int(r["epoch"]): [float(r["val/acc_head0"]), float(r["val/acc_head1"])] for r in rows}
    callback = next(
        c for c in objects["trainer"].callbacks if isinstance(c, HeadFittingCheckpoints)
    )
    assert callback.history.keys() == logged.keys()
    for epoch, accuracies in logged.items():
        np.testing.assert_allclose(callback.history[epoch], accuracies, atol=1e-6)
    # Query none: head 0 submits, at its own last fitting epoch.
    assert metrics["selection/epoch"] == last_fitting_epoch(logged, 0, tolerance)
