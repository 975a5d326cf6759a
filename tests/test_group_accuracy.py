"""GroupAccuracy against a plain numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hackrobust.metrics import GroupAccuracy, worst_k_accuracy


def numpy_group_accuracy(preds, target, groups, num_groups):
    acc = np.full(num_groups, np.nan)
    for g in range(num_groups):
        rows = groups == g
        if rows.any():
            acc[g] = (preds[rows] == target[rows]).mean()
    return acc


def test_matches_numpy_over_several_updates():
    rng = np.random.default_rng(0)
    num_groups = 7
    metric = GroupAccuracy(num_groups)
    all_preds, all_target, all_groups = [], [], []
    for _ in range(5):
        preds = rng.integers(0, 3, 50)
        target = rng.integers(0, 3, 50)
        groups = rng.integers(-1, num_groups - 1, 50)  # group 6 never appears; -1 is unknown
        metric.update(torch.from_numpy(preds), torch.from_numpy(target), torch.from_numpy(groups))
        all_preds.append(preds), all_target.append(target), all_groups.append(groups)
    expected = numpy_group_accuracy(
        np.concatenate(all_preds),
        np.concatenate(all_target),
        np.concatenate(all_groups),
        num_groups,
    )
    np.testing.assert_allclose(metric.compute().numpy(), expected)

    seen = np.sort(expected[~np.isnan(expected)])
    for fraction, value in metric.worst_k().items():
        k = max(1, math.ceil(fraction * len(seen)))
        assert value == pytest.approx(seen[:k].mean())


def test_accepts_logits_and_resets():
    metric = GroupAccuracy(2)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    metric.update(logits, torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]))
    torch.testing.assert_close(metric.compute(), torch.tensor([0.5, 0.0], dtype=torch.float64))
    metric.reset()
    assert metric.total.sum() == 0


def test_worst_k_without_groups_is_nan():
    assert all(math.isnan(v) for v in worst_k_accuracy(torch.full((3,), math.nan)).values())


def test_feature_agreement_matches_numpy_and_reads_the_group_ids():
    from hackrobust.metrics import FeatureAgreement

    rng = np.random.default_rng(1)
    num_classes, num_features = 3, 2
    features = rng.integers(0, num_classes, (200, num_features))
    groups = features[:, 0] * num_classes + features[:, 1]  # as HackathonDataModule.group_of
    preds = np.where(rng.random(200) < 0.8, features[:, 1], rng.integers(0, num_classes, 200))
    groups[:5] = -1  # unknown rows are ignored
    metric = FeatureAgreement(num_classes, num_features)
    for rows in np.array_split(np.arange(200), 3):
        metric.update(torch.from_numpy(preds[rows]), torch.from_numpy(groups[rows]))
    known = groups >= 0
    expected = [(preds[known] == features[known, f]).mean() for f in range(num_features)]
    np.testing.assert_allclose(metric.compute().numpy(), expected)


def test_feature_names_come_from_group_names_only_when_they_are_combinations():
    from hackrobust.metrics import feature_names_of_groups

    assert feature_names_of_groups(["left=0,right=0", "left=0,right=1"]) == ["left", "right"]
    assert feature_names_of_groups(["Animalia_Chordata_x", "Plantae_y"]) is None
    assert feature_names_of_groups([]) is None
