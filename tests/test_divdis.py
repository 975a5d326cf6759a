"""DivDis' loss terms against hand computations."""

from __future__ import annotations

import math

import torch

from hackrobust.methods.divdis import marginal_kl, mean_pairwise, pairwise_mutual_information


def one_hot_heads(a, b):
    return torch.stack([torch.eye(2)[a], torch.eye(2)[b]], dim=1)


def test_identical_confident_heads_share_the_entropy_of_their_labels():
    a = torch.tensor([0, 1, 0, 1])
    mi = pairwise_mutual_information(one_hot_heads(a, a))
    assert math.isclose(mi[0, 1].item(), math.log(2), rel_tol=1e-5)


def test_independent_heads_have_zero_mutual_information():
    a, b = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    assert abs(pairwise_mutual_information(one_hot_heads(a, b))[0, 1].item()) < 1e-6


def test_all_zero_pairs_give_zero_not_nan():
    """The official code averages the non-zero terms only, and returns NaN here."""
    a, b = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    value = mean_pairwise(pairwise_mutual_information(one_hot_heads(a, b)))
    assert value.item() == 0 or abs(value.item()) < 1e-6
    assert not torch.isnan(value)


def test_mean_pairwise_counts_each_pair_once():
    matrix = torch.tensor([[9.0, 1.0, 2.0], [1.0, 9.0, 3.0], [2.0, 3.0, 9.0]])
    assert mean_pairwise(matrix).item() == 2.0


def test_marginal_kl_is_zero_when_the_unlabeled_marginal_matches():
    labeled = torch.full((4, 2, 2), 0.5)
    unlabeled = one_hot_heads(torch.tensor([0, 1, 0, 1]), torch.tensor([1, 0, 1, 0]))
    assert abs(marginal_kl(unlabeled, labeled).item()) < 1e-6
    skewed = one_hot_heads(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 0]))
    expected = (0.75 * math.log(1.5) + 0.25 * math.log(0.5) + math.log(2)) / 2
    assert math.isclose(marginal_kl(skewed, labeled).item(), expected, rel_tol=1e-4)
