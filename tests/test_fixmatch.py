"""FixMatch: its loss against a hand computation, its pseudo-labels, its strong view."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hackrobust.methods import FixMatch
from hackrobust.models.classifier import MultiHeadClassifier


def linear_model(input_shape, num_classes, num_heads, dropout=0.0):
    trunk = nn.Sequential(nn.Flatten(), nn.Dropout(dropout))
    return MultiHeadClassifier(trunk, int(torch.tensor(input_shape).prod()), num_classes, num_heads)


def fixmatch(input_shape=(3,), num_heads=1, dropout=0.0, **kwargs) -> FixMatch:
    torch.manual_seed(0)
    return FixMatch(
        model=functools.partial(linear_model, dropout=dropout),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        input_shape=input_shape,
        num_classes=2,
        num_heads=num_heads,
        **kwargs,
    )


def batch(labeled_x, y, unlabeled_x) -> dict:
    return {"labeled": {"x": labeled_x, "y": y}, "unlabeled": {"x": unlabeled_x}}


@pytest.mark.parametrize("num_heads", [1, 2])
def test_loss_is_labeled_cross_entropy_plus_weighted_confident_consistency(num_heads):
    """Without noise or erasing the strong view is the input: the consistency term is the
    cross-entropy of each confident row against its own prediction, zero for the unsure rows."""
    module = fixmatch(num_heads=num_heads, noise_std=0.0, erase_area=0.0, consistency_weight=2.0)
    # Logit margin 4 x the first feature, its sign flipped on the second head: each head is
    # confident (above 0.95) where |x0| > 0.74, and the heads predict opposite classes.
    signs = torch.tensor([1.0, -1.0])[:num_heads]
    weight = torch.stack([torch.tensor([[-2.0, 0, 0], [2.0, 0, 0]]) * s for s in signs])
    with torch.no_grad():
        module.net.heads.weight.copy_(weight.flatten(0, 1))
        module.net.heads.bias.zero_()
    labeled_x, y = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]), torch.tensor([0, 0])
    unlabeled_x = torch.tensor([[2.0, 5, 5], [-3.0, 1, 1], [0.1, 0, 0], [-0.2, 7, 7]])

    loss, logits, extras = module.compute_loss(batch(labeled_x, y, unlabeled_x))

    labeled_logits, unlabeled_logits = module(labeled_x), module(unlabeled_x)
    labeled_ce = torch.stack([F.cross_entropy(labeled_logits[:, h], y) for h in range(num_heads)])
    confident = unlabeled_logits[:2]  # rows 0 and 1, on every head
    confident_ce = F.cross_entropy(
        confident.flatten(0, 1), confident.flatten(0, 1).argmax(-1), reduction="sum"
    )
    expected_consistency = confident_ce / (4 * num_heads)  # mean over every row and head
    assert extras["confident_share"].item() == 0.5
    torch.testing.assert_close(extras["xent"], labeled_ce.mean())
    torch.testing.assert_close(extras["consistency"], expected_consistency)
    torch.testing.assert_close(loss, labeled_ce.mean() + 2.0 * expected_consistency)
    assert logits.shape == (2, num_heads, 2)


def test_pseudo_labels_are_read_in_eval_mode_and_leave_the_mode_as_it_was():
    module = fixmatch(dropout=0.9, threshold=0.0)
    x = torch.randn(64, 3)
    module.train()
    with torch.no_grad():
        module.net.eval()
        expected = module(x).argmax(-1)
        module.net.train()
    for _ in range(3):  # dropout at 0.9 would scramble them in train mode
        labels, confident = module.consistency.pseudo_labels(module.net, x)
        torch.testing.assert_close(labels, expected)
        assert confident.all()
    assert module.net.training
    module.eval()
    module.consistency.pseudo_labels(module.net, x)
    assert not module.net.training


def test_the_strong_view_erases_one_square_of_each_image_at_the_same_place():
    module = fixmatch(input_shape=(1, 28, 28), noise_std=0.0, erase_area=0.08)
    x = torch.ones(5, 1, 28, 28)
    erased = module.consistency.strong_view(x) == 0
    assert erased.sum(dim=(1, 2, 3)).tolist() == [64] * 5  # 0.08 of 28 x 28: an 8 x 8 square
    rows, cols = erased[0, 0].nonzero().unbind(1)
    assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7
    assert (erased == erased[:1]).all()
    assert (x == 1).all()  # the input itself is untouched


def test_the_strong_view_erases_a_share_of_a_vectors_features_and_adds_noise():
    module = fixmatch(input_shape=(50,), noise_std=0.0, erase_area=0.2)
    erased = module.consistency.strong_view(torch.ones(4, 50)) == 0
    assert erased.sum(dim=1).tolist() == [10] * 4 and (erased == erased[:1]).all()
    noisy = fixmatch(input_shape=(50,), noise_std=0.5, erase_area=0.0)
    difference = noisy.consistency.strong_view(torch.zeros(2000, 50))
    assert abs(difference.std().item() - 0.5) < 0.01 and abs(difference.mean().item()) < 0.01


def test_an_erase_area_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="erase_area is a share of the input"):
        fixmatch(erase_area=1.0)
