"""Class-pair switches: the mixed hypotheses of two heads over three classes, the plausibility
term that keeps the heads to them, and a run that chooses one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hackrobust.methods.pair_switches import (
    applies,
    class_pairs,
    hypothesis_names,
    switches,
    with_pair_switches,
)
from hackrobust.query.selection import choose_head
from hackrobust.train import train

from helpers import build_run, compose_train, offline_overrides


def test_the_mixed_hypotheses_exist_for_two_heads_and_three_classes_only():
    assert class_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(switches(3)) == 6 and (0, 0, 0) not in switches(3)
    assert applies(2, 3)
    assert not applies(2, 2) and not applies(2, 4) and not applies(3, 3)
    probs = torch.rand(5, 2, 10).softmax(-1)
    assert with_pair_switches(probs) is probs


def grid_heads(noise: float = 0.0, seed: int = 0):
    """Rows of every (left, right) cell; head 0 reads the left digit on pairs {0,1} and {1,2}
    and the right one on {0,2}; head 1 the other way round (a natural blend)."""
    rng = np.random.default_rng(seed)
    left, right = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    follows_left = {(0, 1): True, (0, 2): False, (1, 2): True}
    pair = [tuple(sorted((a, b))) for a, b in zip(left, right, strict=True)]
    head0 = np.array(
        [a if a == b or follows_left[p] else b for a, b, p in zip(left, right, pair, strict=True)]
    )
    head1 = np.where(head0 == left, right, left)
    probs = np.stack([np.eye(3)[head0], np.eye(3)[head1]], axis=1) * 0.9 + 0.1 / 3
    probs += noise * rng.random(probs.shape)
    return probs / probs.sum(-1, keepdims=True), left, right


def test_a_mixed_hypothesis_follows_its_head_on_each_class_pair_and_averages_agreement():
    probs, left, right = grid_heads()
    hypotheses = with_pair_switches(torch.from_numpy(probs)).numpy()
    assert hypotheses.shape == (300, 8, 3)
    np.testing.assert_array_equal(hypotheses[:, :2], probs)
    names = hypothesis_names(2, 3, [4, 5, 6])
    assert names[:2] == ["head 0", "head 1"] and len(names) == 8
    # Head 0 on {0,1} and {1,2}, head 1 on {0,2}: the switch (0, 1, 0), which is the left digit.
    index = 2 + switches(3).index((0, 1, 0))
    assert names[index] == "head 0 on 4/5, head 1 on 4/6, head 0 on 5/6"
    np.testing.assert_array_equal(hypotheses[:, index].argmax(-1), left)
    same = left == right
    np.testing.assert_allclose(hypotheses[same, index], probs[same].mean(axis=1))


def test_five_labels_choose_the_mixed_hypothesis_that_reads_one_feature():
    probs, left, right = grid_heads(noise=0.05)
    hypotheses = with_pair_switches(torch.from_numpy(probs)).numpy()
    for truth in (left, right):
        choice = choose_head(hypotheses, lambda d, t=truth: int(t[d]), budget=5)
        assert (hypotheses[:, choice.head].argmax(-1) == truth).all()
        assert choice.head >= 2 and len(choice.queries) == 5  # neither head alone is right


def test_the_plausibility_term_penalises_classes_outside_the_references_top_two(tmp_path):
    overrides = [*offline_overrides("mnist_embed_456", tmp_path), "method=divdis"]
    _, datamodule, method = build_run(overrides, tmp_path)
    assert method.pair_switching and method.plausible_after == 1
    x = datamodule.unlabeled_set.tensors["x"][:16]
    reference = method.net(x).detach().float().softmax(-1).mean(1)
    outside = reference.argmin(-1)  # per row, the class the reference ranks last
    inside = torch.full((16, 2, 3), 0.5).scatter_(2, outside.view(-1, 1, 1).expand(-1, 2, 1), 0.0)
    half_out = torch.full((16, 2, 3), 0.25).scatter_(
        2, outside.view(-1, 1, 1).expand(-1, 2, 1), 0.5
    )
    assert method.plausibility(x, inside).item() == pytest.approx(0.0, abs=1e-6)
    assert method.plausibility(x, half_out).item() == pytest.approx(-np.log(0.5), rel=1e-5)
    # The reference is a frozen copy outside the module: not trained, not in the state dict.
    assert not any(k.startswith("_reference") for k in method.state_dict())
    torch.nn.init.normal_(method.net.heads.weight, std=3.0)  # the net changes, the copy not
    assert method.plausibility(x, inside).item() == pytest.approx(0.0, abs=1e-6)
    # A checkpoint carries it, so a run resumed from one keeps the same reference.
    checkpoint = {}
    method.on_save_checkpoint(checkpoint)
    _, _, resumed = build_run(overrides, tmp_path)
    torch.nn.init.normal_(resumed.net.heads.weight, std=3.0)  # unlike the saved reference
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.plausibility(x, inside).item() == pytest.approx(0.0, abs=1e-6)
    assert resumed.plausibility(x, half_out).item() == pytest.approx(-np.log(0.5), rel=1e-5)


def test_pair_switches_change_nothing_with_two_classes(tmp_path):
    _, _, method = build_run(
        [*offline_overrides("mnist_embed", tmp_path), "method=divdis"], tmp_path
    )
    assert not method.pair_switching
    probs = method.probabilities(torch.randn(4, 64))
    assert probs.shape == (4, 2, 2)


def test_a_three_class_run_offers_and_reports_the_class_pair_hypotheses(tmp_path):
    overrides = [
        *offline_overrides("mnist_embed_456", tmp_path),
        "method=divdis",
        "query=oracle",
        "trainer.max_epochs=2",
        "logger=none",
    ]
    train(compose_train(overrides, tmp_path))
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert len(report["head_posterior"]) == 8 and len(report["holdout_accuracy"]) == 8
    assert report["chosen_rule"] == hypothesis_names(2, 3, [4, 5, 6])[report["chosen_head"]]
    assert report["labels_revealed"] <= 5
    predicted = np.load(tmp_path / "predictions.npz")["predicted"]
    assert predicted.shape[1] == 8


def test_pair_switches_can_be_turned_off(tmp_path):
    overrides = [*offline_overrides("mnist_embed_456", tmp_path), "method=divdis"]
    _, _, method = build_run([*overrides, "method.pair_switches=false"], tmp_path)
    assert not method.pair_switching
    assert method.probabilities(torch.randn(4, 64)).shape == (4, 2, 3)


def test_a_chosen_mixed_rule_is_named_by_the_method_and_scored_as_itself(tmp_path):
    import lightning as L

    overrides = [*offline_overrides("mnist_embed_456", tmp_path), "method=divdis"]
    _, datamodule, method = build_run(overrides, tmp_path)
    assert method.hypothesis_names([4, 5, 6]) == hypothesis_names(2, 3, [4, 5, 6])
    rule = 2 + switches(3).index((0, 1, 0))
    method.chosen_head.fill_(rule)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(method, datamodule=datamodule, verbose=False)
    target = datamodule.target_set.tensors
    predicted = method.probabilities(target["x"])[:, rule].argmax(-1)
    expected = (predicted == target["y"]).float().mean().item()
    assert trainer.callback_metrics["target/acc"].item() == pytest.approx(expected, abs=1e-6)
