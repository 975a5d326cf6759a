"""D-BAT: its loss against hand computations, the members' turns, and one run end to end."""

from __future__ import annotations

import csv
import functools
import math

import lightning as L
import pytest
import torch

from hackrobust.methods import DBAT
from hackrobust.methods.dbat import disagreement_loss
from hackrobust.models import mlp, small_cnn
from hackrobust.submission import read_submission
from hackrobust.train import train

from helpers import compose_train, offline_overrides


def make_dbat(model=None, input_shape=(2,), **kwargs) -> DBAT:
    model = model or functools.partial(mlp, hidden=(8,))
    optimizer = functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.1)
    return DBAT(model, optimizer, input_shape=input_shape, num_classes=2, **kwargs)


def at_epoch(module: DBAT, epoch: int, max_epochs: int) -> DBAT:
    """Attach a trainer standing at `epoch` of a fit of `max_epochs`."""
    if module._trainer is None or module.trainer.max_epochs != max_epochs:
        module.trainer = L.Trainer(
            max_epochs=max_epochs, logger=False, enable_checkpointing=False, barebones=True
        )
    module.trainer.fit_loop.epoch_progress.current.completed = epoch
    return module


def test_disagreement_loss_matches_hand_computation():
    # Binary: the paper's -log(p1(0) p2(1) + p1(1) p2(0)).
    p1, p2 = torch.tensor([[0.9, 0.1]]), torch.tensor([[0.2, 0.8]])
    expected = -math.log(0.9 * 0.8 + 0.1 * 0.2)
    assert math.isclose(disagreement_loss(p1, p2).item(), expected, rel_tol=1e-5)
    # Multiclass: the frozen model's class 0 (0.6), which the trained one gives 0.1.
    p1, p2 = torch.tensor([[0.6, 0.3, 0.1]]), torch.tensor([[0.1, 0.2, 0.7]])
    expected = -math.log(0.6 * 0.9 + 0.4 * 0.1)
    assert math.isclose(disagreement_loss(p1, p2).item(), expected, rel_tol=1e-5)
    # A mean over rows.
    both = disagreement_loss(torch.tensor([[0.9, 0.1], [0.5, 0.5]]), torch.tensor([[0.2, 0.8]] * 2))
    assert math.isclose(both.item(), (-math.log(0.74) + math.log(2)) / 2, rel_tol=1e-5)


def test_confident_disagreement_is_cheapest():
    frozen = torch.tensor([[0.99, 0.01]])
    costs = [
        disagreement_loss(frozen, torch.tensor([p])).item()
        for p in ([0.01, 0.99], [0.3, 0.7], [0.5, 0.5], [0.99, 0.01])
    ]
    assert costs == sorted(costs)
    assert costs[0] < 0.03 < math.log(2) < costs[-1]


def test_members_are_independent_networks():
    module = make_dbat(num_heads=3)
    members = module.net.members
    assert len(members) == 3 and all(m.num_heads == 1 for m in members)
    ids = [{id(p) for p in m.parameters()} for m in members]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == len(list(module.net.parameters()))
    x = torch.randn(5, 2)
    assert module(x).shape == (5, 3, 2)
    torch.testing.assert_close(module(x)[:, 1:2], members[1](x))


@pytest.mark.parametrize(
    ("num_heads", "max_epochs", "epochs_per_member", "members"),
    [
        (2, 5, None, [0, 0, 1, 1, 1]),  # E = 5 // 2 = 2; the last member takes the spare epoch
        (3, 4, 1, [0, 1, 2, 2]),
        (2, 2, None, [0, 1]),
    ],
)
def test_members_take_turns_and_only_the_last_ones_epochs_are_selectable(
    num_heads, max_epochs, epochs_per_member, members
):
    module = make_dbat(num_heads=num_heads, epochs_per_member=epochs_per_member)
    for epoch, member in enumerate(members):
        at_epoch(module, epoch, max_epochs)
        assert module.active_member() == member
        assert module.selection_ready() == (member == num_heads - 1)


def batch(n: int = 8, shape=(2,)) -> dict:
    return {
        "labeled": {"x": torch.randn(n, *shape), "y": torch.arange(n) % 2},
        "unlabeled": {"x": torch.randn(n, *shape)},
    }


def step(module: DBAT, optimizer: torch.optim.Optimizer, data: dict) -> dict:
    module.on_train_epoch_start()
    loss, logits, extras = module.compute_loss(data)
    optimizer.zero_grad()  # to None, as Lightning does
    loss.backward()
    optimizer.step()
    assert logits.shape == (len(data["labeled"]["y"]), module.num_heads, 2)
    return extras


def test_earlier_members_are_frozen_while_the_next_one_trains():
    torch.manual_seed(0)
    cnn = functools.partial(small_cnn, width=4, hidden=8)
    module = make_dbat(cnn, input_shape=(1, 16, 16), num_heads=2)
    module.train()
    optimizer = module.configure_optimizers()
    first, second = module.net.members
    data = batch(shape=(1, 16, 16))

    # Member 0's turn: it gets AdamW state (momentum), member 1 is left as it was.
    untouched = {k: v.clone() for k, v in second.state_dict().items()}
    extras = step(at_epoch(module, 0, max_epochs=2), optimizer, data)
    assert extras["disagreement"].item() == 0
    for key, value in second.state_dict().items():
        assert torch.equal(value, untouched[key]), key

    # Member 1's turn: member 0's weights, decay, momentum and norm statistics all stand still.
    frozen = {k: v.clone() for k, v in first.state_dict().items()}
    trained = {k: v.clone() for k, v in second.state_dict().items()}
    extras = step(at_epoch(module, 1, max_epochs=2), optimizer, data)
    assert extras["disagreement"].item() > 0
    assert all(p.grad is None for p in first.parameters())
    for key, value in first.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    now = second.state_dict()
    for key in ("heads.weight", "trunk.0.1.running_mean"):  # a weight and a norm statistic
        assert not torch.equal(now[key], trained[key]), key


def test_fewer_than_two_members_is_an_error():
    with pytest.raises(ValueError, match="at least 2 members"):
        make_dbat(num_heads=1)


def test_fewer_epochs_than_members_is_an_error():
    module = at_epoch(make_dbat(num_heads=3), 0, max_epochs=2)
    with pytest.raises(ValueError, match="max_epochs must be at least num_heads=3, got 2"):
        module.setup("fit")
    module = at_epoch(make_dbat(num_heads=2, epochs_per_member=2), 0, max_epochs=3)
    with pytest.raises(ValueError, match="max_epochs must be at least 4, got 3"):
        module.setup("fit")


def test_train_end_to_end_on_toy(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "method=dbat", "trainer.max_epochs=2"]
    metrics, objects = train(compose_train(overrides, tmp_path))
    labels = read_submission(tmp_path / "submission.csv")
    assert len(labels) == len(objects["datamodule"].data.x_target)
    assert objects["probs"].shape == (len(labels), 2, 2)
    # The last epoch was member 1's: it disagreed with member 0, and only it could be selected.
    assert metrics["train/disagreement"] > 0
    assert objects["method"].selection_ready()
    assert objects["trainer"].checkpoint_callback.best_model_path.endswith("epoch_001.ckpt")
    with next((tmp_path / "csv").rglob("metrics.csv")).open() as f:
        rows = [r for r in csv.DictReader(f) if r["val/select"]]
    assert [(r["epoch"], r["val/select"] == "inf") for r in rows] == [("0", True), ("1", False)]
    assert all(r["val/acc_head1"] for r in rows)


def test_train_refuses_fewer_epochs_than_members(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "method=dbat", "trainer.max_epochs=1"]
    with pytest.raises(ValueError, match="max_epochs must be at least num_heads=2"):
        train(compose_train(overrides, tmp_path))
