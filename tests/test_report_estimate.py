"""The report's target-accuracy estimate: Average Thresholded Confidence (ATC) under shift."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hackrobust.query.report import atc_accuracy, atc_threshold, build_report, confidence

LABELS = np.array([0, 1])


def test_confidence_scores():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]])
    np.testing.assert_allclose(
        confidence(probs, "negative_entropy"),
        [-math.log(2), 0.0, 0.9 * math.log(0.9) + 0.1 * math.log(0.1)],
    )
    np.testing.assert_allclose(confidence(probs, "max_probability"), [0.5, 1.0, 0.9])
    with pytest.raises(ValueError):
        confidence(probs, "margin")


def test_atc_by_hand():
    # Three of four held-out rows are right: t lies between the lowest two scores (0.15), and
    # two of the four target rows lie above it.
    holdout = np.array([0.4, 0.1, 0.3, 0.2])
    assert atc_threshold(holdout, 0.75) == pytest.approx(0.15)
    t, estimate = atc_accuracy(holdout, 0.75, np.array([0.05, 0.12, 0.5, 0.6]))
    assert t == pytest.approx(0.15) and estimate == 0.5
    # All right: every target row at least as sure as the least sure held-out row counts.
    assert atc_accuracy(holdout, 1.0, np.array([0.05, 0.2, 0.5]))[1] == pytest.approx(2 / 3)


def test_atc_splits_ties_at_the_threshold():
    # Three held-out rows tie at 0 (saturated confidence); two of four are right, so 2 of the 3
    # tied rows belong above t = 0: tied target rows count for 2/3 each.
    t, estimate = atc_accuracy(np.array([0.0, 0.0, 0.0, -1.0]), 0.5, np.array([0.0, 0.0, -2.0]))
    assert t == 0.0 and estimate == pytest.approx(4 / 9)


def shifted_run(shifted: float, n_target=1000, n_holdout=200, seed=0):
    """Two heads that agree on half the target rows; head 1 is chosen (it matches 5 revealed
    labels). Held-out: 95% right, the right rows sure (0.97), the wrong ones unsure (0.6). On the
    target a share `shifted` of the rows get the unsure probabilities the held-out errors had."""
    rng = np.random.default_rng(seed)
    sure, unsure = np.array([0.97, 0.03]), np.array([0.6, 0.4])
    y = rng.integers(0, 2, n_target)
    agree = np.arange(n_target) < n_target // 2
    head1 = np.where(rng.random(n_target) < shifted, 1, 0)  # 1: unsure
    p1 = np.where(head1[:, None] == 1, unsure, sure)
    p1 = np.where(y[:, None] == 0, p1, p1[:, ::-1])  # head 1 predicts y
    p0 = np.where(agree[:, None], p1, p1[:, ::-1])  # head 0 the other label where not agreed
    probs = np.stack([p0, p1], axis=1)
    hits = np.arange(n_holdout) < round(0.95 * n_holdout)
    holdout_probs = np.where(hits[:, None], sure, unsure)
    asked = np.flatnonzero(~agree)[:5]
    choice = {
        "head": 1,
        "posterior": [1e-4, 1 - 1e-4],
        "queries": [
            {"datum_id": int(d), "label": int(y[d]), "information_gain": 0.5} for d in asked
        ],
        "holdout_scores": confidence(holdout_probs).tolist(),
    }
    return choice, probs, [0.5, float(hits.mean())], n_holdout


def test_shift_lowers_the_estimate_and_flips_the_verdict():
    choice, probs, holdout_accuracy, n = shifted_run(shifted=0.3)
    report = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8)
    # Old assumption (no held-out confidences): the held-out accuracy, and "submit".
    old = build_report(
        {k: v for k, v in choice.items() if k != "holdout_scores"},
        probs,
        holdout_accuracy,
        n,
        LABELS,
        0.8,
    )
    assert old["estimated_target_accuracy"] == pytest.approx(0.95, abs=0.01)
    assert old["recommendation"] == "submit"
    assert report["atc_target_accuracy"] == pytest.approx(0.7, abs=0.04)
    assert report["estimated_target_accuracy"] == pytest.approx(0.7, abs=0.04)
    low, high = report["estimate_interval_90"]
    assert low <= report["estimated_target_accuracy"] <= high and low < 0.8
    assert report["recommendation"].startswith("keep the default")
    assert "ATC" in report["estimate_basis"] and "atc_threshold" in report


def test_no_shift_estimate_is_the_holdout_accuracy():
    choice, probs, holdout_accuracy, n = shifted_run(shifted=0.05)
    report = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8)
    assert report["estimated_target_accuracy"] == pytest.approx(0.95, abs=0.02)
    low, high = report["estimate_interval_90"]
    assert low <= report["estimated_target_accuracy"] <= high and low >= 0.8
    assert report["recommendation"] == "submit"


def test_no_shift_continuous_scores():
    """Held-out and target confidences from one distribution: ATC recovers the accuracy."""
    rng = np.random.default_rng(3)
    holdout, target = rng.beta(5, 1, 400), rng.beta(5, 1, 4000)
    assert atc_accuracy(holdout, 0.9, target)[1] == pytest.approx(0.9, abs=0.03)


def test_estimate_never_exceeds_what_few_revealed_labels_allow():
    # Nothing revealed where the heads disagree: the head may be right there at most as often
    # as a Beta(1, 1) allows at its 95% quantile, however sure it is.
    choice, probs, holdout_accuracy, n = shifted_run(shifted=0.0)
    choice["queries"] = []
    report = build_report(choice, probs, [0.5, 1.0], n, LABELS, 0.8)
    assert report["estimated_target_accuracy"] <= 0.5 + 0.5 * 0.95 + 1e-9
    # The interval still holds a head that is right on every row: no label contradicted it.
    assert report["estimate_interval_90"][1] == 1.0


def test_heads_the_revealed_labels_did_not_separate_are_scored_as_one_head():
    """Five revealed rows where both heads predict the same: the posterior stays near 1/2, the
    rows where the heads agree are no evidence of the right rule, and the verdict abstains
    (the agreement-based estimate would have said about 0.95)."""
    choice, probs, holdout_accuracy, n = shifted_run(shifted=0.05)
    agree_rows = np.flatnonzero(probs.argmax(-1)[:, 0] == probs.argmax(-1)[:, 1])[:5]
    labels = probs.argmax(-1)[agree_rows, 1]
    choice |= {
        "posterior": [0.47, 0.53],
        "queries": [
            {"datum_id": int(d), "label": int(y), "information_gain": 0.0}
            for d, y in zip(agree_rows, labels, strict=True)
        ],
    }
    report = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8)
    assert not report["revealed_labels_decided"]
    assert report["chosen_head_matches_every_revealed_label"]
    assert report["estimated_target_accuracy"] == pytest.approx(6 / 7, abs=1e-4)  # Beta(6, 1)
    assert report["estimate_interval_90"][0] == pytest.approx(0.05 ** (1 / 6), abs=1e-4)
    assert report["recommendation"].startswith("keep the default")
    assert "did not decide" in report["estimate_basis"]

    choice["posterior"] = [0.05, 0.95]  # the same labels, but decided: the usual estimate
    decided = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8)
    assert decided["revealed_labels_decided"] and decided["recommendation"] == "submit"


def colour_and_and_heads(n=800, seed=0):
    """A balanced target of digit x colour; the label is the digit. Head 0 predicts the colour,
    head 1 the AND of both: they disagree only where colour = 1 and digit = 0, where AND is right,
    and both are wrong where digit = 1 and colour = 0."""
    rng = np.random.default_rng(seed)
    digit, colour = rng.integers(0, 2, n), rng.integers(0, 2, n)
    predictions = np.stack([colour, digit & colour], axis=1)
    probs = np.eye(2)[predictions] * 0.96 + 0.02
    asked = np.flatnonzero(predictions[:, 0] != predictions[:, 1])[:5]
    choice = {
        "head": 1,
        "posterior": [1e-6, 1 - 1e-6],
        "queries": [
            {"datum_id": int(d), "label": int(digit[d]), "information_gain": 0.1} for d in asked
        ],
    }
    return choice, probs, float(np.mean(predictions[:, 1] == digit))


def test_predicted_class_shares_bound_heads_that_are_wrong_together():
    choice, probs, true_accuracy = colour_and_and_heads()
    blind = build_report(choice, probs, [1.0, 1.0], 120, LABELS, 0.8)
    assert blind["chosen_head_matches_every_revealed_label"]
    assert blind["recommendation"] == "submit"  # every revealed label agreed with the AND head
    report = build_report(choice, probs, [1.0, 1.0], 120, LABELS, 0.8, class_prior=[0.5, 0.5])
    bound = report["class_balance"]["accuracy_bound"]
    shares = np.bincount(probs[:, 1].argmax(-1), minlength=2) / len(probs)
    assert bound == pytest.approx(1 - abs(shares[0] - 0.5), abs=1e-4)  # TV of two classes
    assert true_accuracy <= bound + 1e-4 < 0.8  # a true bound, and below the default
    low, high = report["estimate_interval_90"]
    assert report["estimated_target_accuracy"] <= bound and low <= bound
    # The cap is an upper bound, not a floor. It cut far more than the shares' noise: the
    # evidence failed, so the low end falls to the revealed labels' alone (5 of 5: Beta(6, 1)).
    uncapped = report["class_balance"]["uncapped_estimate"]
    assert uncapped == blind["estimated_target_accuracy"] > bound + 0.1
    assert low == pytest.approx(0.05 ** (1 / 6), abs=2e-4)
    assert low <= true_accuracy  # the interval holds the accuracy the cap alone overstated
    assert high == pytest.approx(bound + 1.6449 * 0.5 * 2 * 0.5 / np.sqrt(len(probs)), abs=1e-4)
    assert report["recommendation"].startswith("keep the default")


def test_class_shares_that_match_the_prior_leave_the_estimate_alone():
    choice, probs, holdout_accuracy, n = shifted_run(0.0)
    shares = np.bincount(probs[:, 1].argmax(-1), minlength=2) / len(probs)
    plain = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8)
    bounded = build_report(choice, probs, holdout_accuracy, n, LABELS, 0.8, class_prior=shares)
    assert bounded["class_balance"]["accuracy_bound"] == 1.0
    for key in ("estimated_target_accuracy", "estimate_interval_90", "recommendation"):
        assert bounded[key] == plain[key]


def test_heads_not_told_apart_are_scored_from_the_revealed_labels_even_after_a_miss():
    # Two heads agreeing on 93% of the rows, posterior 0.8 (< DECIDED), the chosen head right on
    # 3 of 5 revealed labels: the agreement region is not held-out-like, so the held-out
    # accuracy (0.92) must not carry the estimate; the revealed labels alone do: Beta(4, 3).
    rng = np.random.default_rng(0)
    n = 1000
    head0 = rng.integers(0, 2, n)
    head1 = np.where(np.arange(n) < 70, 1 - head0, head0)
    probs = np.stack([np.eye(2)[head0], np.eye(2)[head1]], axis=1) * 0.9 + 0.05
    truth = [head0[0], 1 - head0[1], head0[2], 1 - head0[3], head0[4]]
    choice = {
        "head": 0,
        "posterior": [0.8, 0.2],
        "queries": [
            {"datum_id": d, "label": int(y), "information_gain": 0.1} for d, y in enumerate(truth)
        ],
    }
    report = build_report(choice, probs, [0.92, 0.9], 120, LABELS, 0.5)
    assert report["head_agreement_with_revealed"][0] == 0.6
    assert report["estimate_basis"].startswith("revealed labels only")
    assert report["estimated_target_accuracy"] == pytest.approx(4 / 7, abs=1e-4)
    low, high = report["estimate_interval_90"]
    assert low < 0.5 < 0.64 < high < 0.92
    assert report["recommendation"] == "keep the default (do not submit)"


def test_without_held_out_rows_the_accuracy_is_null_and_the_revealed_labels_score_the_head():
    choice, probs, _, _ = shifted_run(shifted=0.0)
    choice["holdout_scores"] = []
    report = build_report(choice, probs, [None, None], 0, LABELS, 0.8)
    assert report["holdout_accuracy"] == [None, None]
    assert json.loads(json.dumps(report, allow_nan=False)) == report  # strict JSON: no NaN
    assert report["estimate_basis"].startswith("revealed labels only; no held-out labeled rows")
    low, high = report["estimate_interval_90"]
    assert (low, high) == pytest.approx((0.05 ** (1 / 6), 1.0), abs=1e-4)  # Beta(6, 1), x = n
    assert report["recommendation"].startswith("keep the default")


def test_one_label_where_the_heads_disagree_never_makes_a_zero_width_submit():
    """The D-BAT run of issue 41 (`method=dbat dataset=mnist_cc dataset.source=digits
    query=oracle trainer.max_epochs=2`): the heads agree on 65% of the rows, one revealed label
    falls where they disagree (posterior 0.91), the chosen head predicts class 1 on 64% of a
    balanced target, and it scored 0.77. Its report said "submit" with [0.858, 0.858]."""
    n, rng = 1200, np.random.default_rng(0)
    head0 = (rng.random(n) < 0.642).astype(int)
    disagree = rng.random(n) > 0.654
    head1 = np.where(disagree, 1 - head0, head0)
    probs = np.stack([np.eye(2)[head0], np.eye(2)[head1]], axis=1) * 0.96 + 0.02
    one = int(np.flatnonzero(disagree)[0])
    agreeing = np.flatnonzero(~disagree)[:4]
    choice = {
        "head": 0,
        "posterior": [0.911845, 0.088155],
        "queries": [
            {"datum_id": int(d), "label": int(head0[d]), "information_gain": 0.1}
            for d in [one, *agreeing]
        ],
    }
    report = build_report(choice, probs, [1.0, 1.0], 120, LABELS, 0.8, class_prior=[0.5, 0.5])
    low, high = report["estimate_interval_90"]
    assert report["revealed_labels_decided"]
    assert high - low > 0.2  # one label there cannot pin the accuracy down
    assert low < 0.77 < high
    assert report["recommendation"].startswith("keep the default")


def test_a_cap_within_the_shares_noise_shifts_the_interval_and_a_larger_one_drops_its_low_end():
    from hackrobust.query.report import _capped

    # Cut 0.005, within the noise 0.01: the low end moves down by the cut, no further.
    point, (low, high) = _capped(0.99, (0.97, 1.0), bound=0.985, slack=0.01, revealed_low=0.6)
    assert (point, low, high) == pytest.approx((0.985, 0.965, 0.995))
    # Cut 0.1: the evidence failed; the low end is the revealed labels' alone.
    point, (low, high) = _capped(0.99, (0.97, 1.0), bound=0.89, slack=0.01, revealed_low=0.6)
    assert (point, low, high) == pytest.approx((0.89, 0.6, 0.9))
    # Under the bound: unchanged.
    assert _capped(0.9, (0.85, 0.95), bound=0.97, slack=0.01, revealed_low=0.6) == (
        0.9, (0.85, 0.95))  # fmt: skip
