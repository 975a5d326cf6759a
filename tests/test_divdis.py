"""DivDis' loss terms against hand computations."""

from __future__ import annotations

import math

import torch

from hackrobust.methods.divdis import marginal_kl, mean_pairwise, pairwise_mutual_information

from helpers import build_run, offline_overrides


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


def test_the_consistency_term_adds_fixmatchs_term_on_the_unlabeled_batch(tmp_path):
    """`method.consistency`: DivDis' loss plus the weighted FixMatch term of every head, computed
    by `Consistency` on the same unlabeled batch; the term's values are logged."""
    overrides = [*offline_overrides("mnist_sum", tmp_path), "method=divdis"]
    _, datamodule, plain = build_run(overrides, tmp_path)
    datamodule.with_unlabeled = True
    batch = {name: next(iter(loader)) for name, loader in datamodule.train_dataloader().items()}
    plain.eval()  # no batch-norm updates between the passes compared
    unlabeled = plain(batch["unlabeled"]["x"]).float()  # the strong view is the input here
    confidence = unlabeled.softmax(-1).max(-1).values
    threshold = confidence.median().item()  # half the (row, head) pairs count
    settings = f"{{weight:2.0,noise_std:0.0,erase_area:0.0,threshold:{threshold}}}"
    _, _, with_term = build_run([*overrides, f"method.consistency={settings}"], tmp_path)
    with_term.net.load_state_dict(plain.net.state_dict())
    with_term.eval()

    loss, _, extras = with_term.compute_loss(batch)
    base_loss, _, _ = plain.compute_loss(batch)
    sure = confidence > threshold
    per_row = torch.nn.functional.cross_entropy(
        unlabeled.flatten(0, 1), unlabeled.flatten(0, 1).argmax(-1), reduction="none"
    )
    expected = (per_row * sure.flatten()).mean()
    assert 0 < sure.float().mean() < 1
    torch.testing.assert_close(extras["consistency"], expected)
    torch.testing.assert_close(extras["confident_share"], sure.float().mean())
    torch.testing.assert_close(loss, base_loss + 2.0 * expected)


def test_divdis_has_no_consistency_term_unless_asked(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "method=divdis"]
    _, _, method = build_run(overrides, tmp_path)
    assert method.consistency is None
    _, _, method = build_run([*overrides, "method.consistency={}"], tmp_path)
    assert (method.consistency.weight, method.consistency.threshold) == (1.0, 0.95)
