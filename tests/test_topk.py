"""Top-k disagreement's loss against hand computations."""

from __future__ import annotations

import math

import torch

from hackrobust.methods.topk import disagreeing_assignments, topk_disagreement_loss


def test_assignments_are_the_disagreeing_label_combinations():
    assert disagreeing_assignments(2, 2).tolist() == [[0, 1], [1, 0]]
    assert len(disagreeing_assignments(3, 3)) == 27 - 3


def test_each_example_takes_its_cheapest_disagreement_and_only_the_k_cheapest_count():
    p = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8]],  # heads already disagree (0, 1): cheap
            [[0.5, 0.5], [0.5, 0.5]],  # undecided
            [[0.9, 0.1], [0.9, 0.1]],  # both say 0: disagreeing is expensive
            [[0.1, 0.9], [0.8, 0.2]],  # heads disagree (1, 0): cheap
        ]
    )
    logits = p.log()
    cheap = [-math.log(0.9) - math.log(0.8), -2 * math.log(0.5), -math.log(0.9) - math.log(0.1),
             -math.log(0.9) - math.log(0.8)]  # fmt: skip
    assignments = disagreeing_assignments(2, 2)
    assert math.isclose(
        topk_disagreement_loss(logits, 0.5, assignments).item(), cheap[0], rel_tol=1e-5
    )
    three = sorted(cheap)[:3]
    assert math.isclose(
        topk_disagreement_loss(logits, 0.75, assignments).item(), sum(three) / 3, rel_tol=1e-5
    )
    assert topk_disagreement_loss(logits, 0.1, assignments).item() == 0.0


def test_per_assignment_takes_each_disagreements_own_cheapest_examples():
    # Every example is cheapest at (0, 1): the pooled top-k never asks for (1, 0).
    p = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8]],
            [[0.8, 0.2], [0.3, 0.7]],
            [[0.6, 0.4], [0.4, 0.6]],
            [[0.7, 0.3], [0.1, 0.9]],
        ]
    )
    logits = p.log()
    assignments = disagreeing_assignments(2, 2)  # (0, 1), (1, 0)
    cost = -(p[:, 0, assignments[:, 0]] * p[:, 1, assignments[:, 1]]).log()  # (B, G)
    pooled = topk_disagreement_loss(logits, 0.5, assignments)
    assert math.isclose(pooled.item(), cost[:, 0].sort().values[:2].mean().item(), rel_tol=1e-5)
    # rate 0.5 of 4 rows over 2 assignments: one row each, the cheapest for that assignment.
    balanced = topk_disagreement_loss(logits, 0.5, assignments, per_assignment=True)
    expected = cost[:, 0].min() + cost[:, 1].min()
    assert math.isclose(balanced.item(), expected.item(), rel_tol=1e-5)
    assert topk_disagreement_loss(logits, 0.2, assignments, per_assignment=True).item() == 0.0


def test_the_rate_warms_up_linearly_from_zero_over_the_warmup_fraction(tmp_path):
    """In a real fit, the logged `train/mix_rate` of step s is r x s / (fraction x steps)."""
    import csv

    from hackrobust.train import train

    from helpers import compose_train, offline_overrides

    overrides = [
        *offline_overrides("toy", tmp_path),
        "method=topk",
        "method.mix_rate_lower_bound=0.4",
        "method.warmup_fraction=0.5",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "dataset.batch_size=16",
        "callbacks=none",
    ]
    _, objects = train(compose_train(overrides, tmp_path))
    steps = objects["trainer"].estimated_stepping_batches
    with open(next(tmp_path.rglob("metrics.csv"))) as handle:
        logged = {int(r["step"]): float(r["train/mix_rate"]) for r in csv.DictReader(handle)
                  if r.get("train/mix_rate")}  # fmt: skip
    assert len(logged) == steps >= 4
    for step, rate in logged.items():
        assert math.isclose(rate, 0.4 * min(1.0, step / (0.5 * steps)), abs_tol=1e-6), step
