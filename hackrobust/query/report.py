"""Submit or abstain: a JSON report next to the CSV, and the line printed at the end of a run.

With several heads, the revealed rows are where the heads disagree, so they say *which* head is
right, not how accurate it is. The estimate combines both. By default the chosen head is taken to be
as accurate on the target rows as on the held-out labeled split. That errs high under shift (the
target has rows where the spurious feature no longer goes with the label). With the active query's
`atc_score` set, it is estimated instead with Average Thresholded Confidence (ATC; Garg et al.,
"Leveraging Unlabeled Data to Predict Out-of-Distribution Performance", ICLR 2022; official code
github.com/saurabhgarg1996/ATC_code): a threshold t on the head's confidence (its largest
probability, ATC-MC; the negative entropy, ATC-NE, is the other choice) is chosen so that the share
of held-out rows above t is the held-out accuracy; the share of target rows above t estimates the
target accuracy. It cannot see rows the head gets wrong with confidence, so under a strong shift it
still errs high; with a perfect held-out split it errs low (t is then the least sure held-out row,
and every target row less sure than that counts as wrong), so it is not the default. It is computed
apart where every head agrees (a_agree) and where they disagree (a_dis); there the head is right as
often if it is the true head (posterior P) and wrong as often if not:

    accuracy ~= agree x a_agree + (1 - agree) x (P x a_dis + (1 - P) x (1 - a_dis))

The interval carries the uncertainty of the held-out accuracy (a 90% Wilson interval, each end
turned into its own threshold) and of the choice: its low end takes the chosen head to be wrong
where the heads disagree unless the posterior leaves the other heads under `TAIL`. The point's
disagreement part never exceeds what the revealed labels there allow (the 95% quantile of a
Beta(1 + right, 1 + wrong) posterior); the high end stays at 1 when none of them contradicts the
head (`upper_end`), so a perfect head is inside the interval. Without held-out confidences
(the default), a_agree = a_dis = the held-out accuracy. When the chosen head contradicts a revealed
label, no head is the true rule everywhere: the disagreement part is then scored from the revealed
labels (Beta posterior) and the verdict is to keep the default. That needs the heads to have been
told apart (posterior at least DECIDED), else see below. With one head there is nothing to choose;
its revealed labels are a small random sample, scored with a Beta(1 + right, 1 + wrong) posterior.
So are several heads that the revealed labels did not separate (the chosen head's posterior below
DECIDED): the heads then mostly agree, which means the disagreement objective failed and they may
share the spurious rule, so the rows where they agree are no longer held-out-like: the held-out
split would say the shared spurious rule is right there.

Where the heads agree they can be wrong together, and no revealed label looks there. One bound needs
no label: a head that predicts class c on a share q_c of the target rows, whose true share is p_c,
is right on at most sum_c min(p_c, q_c) = 1 - TV(p, q) of them. Taking the labeled set's class
shares for p (`class_prior`; the hackathon's target sets keep them), the estimate and its interval
are capped there (the high end only beyond the sampling noise of the target's shares). For
example, a head that predicts class 1 on a quarter of the rows of a target whose two classes are
balanced is right on at most three quarters of them, whatever the revealed labels said. A cap is
an upper bound, not a floor: where it cuts the estimate, the evidence behind it was too high by at
least the cut, so the low end moves down by as much; and a cut beyond the shares' sampling noise
means that evidence failed somewhere, so the low end falls to the revealed labels' alone too. The
report keeps the uncapped estimate beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from hackrobust.submission import write_atomically

Z90 = 1.6449
# The confidence score ATC thresholds unless told otherwise: the largest probability (ATC-MC).
ATC_SCORE = "max_probability"
# The chosen head's posterior from which the revealed labels count as having picked a rule.
DECIDED = 0.9
# Each tail of the 90% interval.
TAIL = 0.05
# What the estimate basis says when the class shares cap the estimate.
CAPPED = "capped by the chosen head's predicted class shares"
# The version of the rule behind the verdict and the interval, written into every report: raise
# it with any change that can move either (experiments/report_calibration.py counts each alone).
RULE_VERSION = 3


def wilson(successes: float, n: int, z: float = Z90) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def upper_end(right: int, n: int) -> float:
    """The 90% interval's high end for a success rate after `right` successes in `n` trials:
    the 95% quantile of the Beta(1 + right, 1 + n - right) posterior, but 1 when every trial
    succeeded (as Brown, Cai and DasGupta's modified Jeffreys interval does, Statistical
    Science 2001): a rate of exactly 1 is then as likely as any, and must stay inside."""
    return 1.0 if right >= n else float(stats.beta.ppf(1 - TAIL, 1 + right, 1 + n - right))


def confidence(probs: np.ndarray, kind: str = ATC_SCORE) -> np.ndarray:
    """ATC's score of each row from its class probabilities (..., classes): higher is surer.

    `max_probability` (ATC-MC) or `negative_entropy` (ATC-NE, the better one in the paper).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if kind == "negative_entropy":
        return (probs * np.log(np.clip(probs, 1e-300, None))).sum(-1)
    if kind == "max_probability":
        return probs.max(-1)
    raise ValueError(f"unknown confidence score {kind!r}")


def atc_threshold(holdout_scores: np.ndarray, accuracy: float) -> float:
    """The score t with a share `accuracy` of the held-out rows above it (the midpoint between
    the neighbouring held-out scores: the rows' (1 - accuracy) quantile, Hazen's definition)."""
    return float(np.quantile(np.asarray(holdout_scores, float), 1 - accuracy, method="hazen"))


def atc_accuracy(
    holdout_scores: np.ndarray, accuracy: float, scores: np.ndarray
) -> tuple[float, float]:
    """(threshold, estimated accuracy): the share of `scores` above the ATC threshold.

    Rows tied with the threshold count for the share of the tied held-out rows that the
    held-out accuracy needs above it (confident heads tie at a score of ~0).
    """
    holdout_scores, scores = np.asarray(holdout_scores, float), np.asarray(scores, float)
    t = atc_threshold(holdout_scores, accuracy)
    if len(scores) == 0:
        return t, float("nan")
    tied = int((holdout_scores == t).sum())
    weight = 0.0
    if tied:
        weight = (accuracy * len(holdout_scores) - (holdout_scores > t).sum()) / tied
        weight = min(1.0, max(0.0, weight))
    return t, float(np.mean(scores > t) + weight * np.mean(scores == t))


@dataclass
class _Evidence:
    """What the report's estimate reads: the heads' labels, the revealed ones, the held-out
    accuracy of the chosen head (with its 90% Wilson interval) and how to split it into where
    the heads agree and where not (`regions`)."""

    head: int
    predicted: np.ndarray  # (N, H) label values
    revealed: dict  # datum_id: label value
    agreement: list  # each head's share of revealed labels matched (None: none revealed)
    agrees: np.ndarray  # (N,) every head predicts the same
    accuracy: tuple[float, float | None, float]  # held-out: (low, point, high)
    regions: Callable[[float], tuple[float, float]]
    posterior: float

    @property
    def agree(self) -> float:
        return float(self.agrees.mean())


def _evidence(choice: dict, probs, holdout_accuracy, holdout_size, label_values):
    head = choice["head"]
    predicted = label_values[probs.argmax(-1)]  # (N, H)
    revealed = {q["datum_id"]: q["label"] for q in choice["queries"]}
    agreement = [
        float(np.mean([predicted[d, h] == y for d, y in revealed.items()])) if revealed else None
        for h in range(probs.shape[1])
    ]
    a = holdout_accuracy[head]  # None: no held-out labeled rows
    low_a, high_a = wilson(a * holdout_size, holdout_size) if a is not None else (0.0, 1.0)
    agrees = (predicted == predicted[:, :1]).all(axis=1)
    regions, atc, source = _regions(choice, probs[:, head], a, agrees)
    evidence = _Evidence(
        head, predicted, revealed, agreement, agrees, (low_a, a, high_a), regions,
        choice["posterior"][head],
    )  # fmt: skip
    return evidence, atc, source


def _regions(choice: dict, head_probs: np.ndarray, a: float, agrees: np.ndarray):
    """(regions, ATC fields, source): the chosen head's estimated accuracy where the heads
    agree and where not, from a held-out accuracy: by ATC with the held-out confidences, else
    that accuracy in both."""
    holdout_scores = choice.get("holdout_scores")
    if not holdout_scores:
        return (lambda acc: (acc, acc)), {}, "held-out accuracy"
    kind = choice.get("atc_score", ATC_SCORE)
    scores = confidence(head_probs, kind)

    def regions(acc: float) -> tuple[float, float]:
        return tuple(
            atc_accuracy(holdout_scores, acc, scores[rows])[1] if rows.any() else acc
            for rows in (agrees, ~agrees)
        )

    threshold, overall = atc_accuracy(holdout_scores, a, scores)
    atc = {
        "atc_score": kind,
        "atc_threshold": round(threshold, 6),
        "atc_target_accuracy": round(overall, 4),
    }
    return regions, atc, "ATC (held-out confidence threshold) on the target set"


def _decided_estimate(e: _Evidence, source: str):
    """Heads told apart and the chosen one never contradicted: held-out-like where the heads
    agree; where not, right as often if it is the true head, capped by the revealed rows.

    The interval's ends are the quantiles of that mixture at `TAIL` and 1 - `TAIL`: the chosen head is the
    true rule with probability P (the posterior), right where the heads disagree about as often
    as on the held-out split; otherwise the other head is, and the chosen one is mostly wrong
    there. So unless P leaves under `TAIL` to the other head, the low end takes it wrong there."""
    asked = [e.predicted[d, e.head] == y for d, y in e.revealed.items() if not e.agrees[d]]
    right, P = sum(asked), e.posterior
    cap = float(stats.beta(1 + right, 1 + len(asked) - right).ppf(1 - TAIL))
    # (where the heads agree, where not) at the held-out accuracy's low end, point, high end
    (low_agree, low_dis), (agree, dis), (high_agree, high_dis) = map(e.regions, e.accuracy)

    def estimate(where_agreeing: float, where_disagreeing: float) -> float:
        return e.agree * where_agreeing + (1 - e.agree) * where_disagreeing

    point = estimate(agree, min(cap, P * dis + (1 - P) * (1 - dis)))
    # Unless the other head may be the true one, the chosen head is right as held out.
    low = estimate(low_agree, 1 - high_dis if P < 1 - TAIL else min(cap, low_dis))
    # The point is capped at the revealed rows' upper quantile; the high end is not (`upper_end`).
    high = estimate(high_agree, min(upper_end(right, len(asked)), high_dis))
    basis = f"head agreement on the target set, {source}, head posterior, revealed labels"
    return point, (min(point, low, high), max(point, low, high)), basis


def _contradicted_estimate(e: _Evidence, source: str):
    """The chosen head contradicts a revealed label: the revealed rows sample the region where
    the heads disagree, so they score it there directly."""
    right = round(e.agreement[e.head] * len(e.revealed))
    beta = stats.beta(1 + right, 1 + len(e.revealed) - right)
    lows, points, highs = (e.regions(acc)[0] for acc in e.accuracy)
    point = e.agree * points + (1 - e.agree) * float(beta.mean())
    interval = (
        min(point, e.agree * lows + (1 - e.agree) * float(beta.ppf(TAIL))),
        max(point, e.agree * highs + (1 - e.agree) * float(beta.ppf(1 - TAIL))),
    )
    basis = (
        "the chosen head contradicts a revealed label: its accuracy where the heads disagree"
        f" is estimated from the revealed labels ({source} where they agree)"
    )
    return point, interval, basis


def _revealed_only_estimate(e: _Evidence, heads: int):
    """One head, or heads the revealed labels did not tell apart: the revealed labels are a
    small sample of the target, scored with a Beta(1 + right, 1 + wrong) posterior."""
    right = sum(e.predicted[d, e.head] == y for d, y in e.revealed.items())
    beta = stats.beta(1 + right, 1 + len(e.revealed) - right)
    if not e.revealed:
        basis = (
            "no target label revealed (query=none): nothing tells which rule the model "
            "learnt, whatever its held-out accuracy (query=api or query=oracle checks it)"
        )
    elif heads == 1:
        basis = "revealed labels only (one head)"
    elif e.posterior >= DECIDED:  # decided, but no held-out rows to score the head with
        basis = "revealed labels only"
    else:
        basis = (
            "revealed labels only: they did not decide between the heads (posterior "
            f"{e.posterior:.3f} < {DECIDED})"
        )
    high = upper_end(right, len(e.revealed))
    return float(beta.mean()), (float(beta.ppf(TAIL)), high), basis


def share_noise(class_prior, n: int) -> float:
    """How far (one-sided, at `Z90`) the total variation between `n` rows' class shares and the
    `class_prior` they are drawn from may go: half the sum of each share's binomial deviation."""
    prior = np.asarray(class_prior, float)
    return Z90 * 0.5 * float(np.sqrt(prior * (1 - prior) / n).sum())


def _capped(point: float, interval, bound: float, slack: float, revealed_low: float):
    """(point, interval) under the class shares' accuracy `bound` (module docstring). The
    target's shares are the labeled set's only up to sampling noise, `slack`: the high end may
    pass the bound by that much, and a cut beyond it lowers the low end to `revealed_low`."""
    cut = max(0.0, point - bound)
    low = interval[0] - cut
    if cut > slack:
        low = min(low, revealed_low)
    point = min(point, bound)
    return point, (max(0.0, low), max(point, min(interval[1], bound + slack)))


def _class_balance(head_probs: np.ndarray, class_prior, classes: int) -> tuple[float, dict]:
    """The accuracy the chosen head's predicted class shares allow (module docstring), and
    the report's fields on it."""
    shares = np.bincount(head_probs.argmax(-1), minlength=classes) / len(head_probs)
    bound = 1 - 0.5 * float(np.abs(shares - np.asarray(class_prior, float)).sum())
    return bound, {
        "predicted_shares": shares.round(4).tolist(),
        "labeled_shares": np.round(class_prior, 4).tolist(),
        "accuracy_bound": round(bound, 4),
    }


def _estimate(e: _Evidence, source: str, heads: int, consistent: bool, decided: bool):
    """(point, interval, basis) by the estimator that fits the evidence (module docstring)."""
    if heads > 1 and decided and e.accuracy[1] is not None:
        estimator = _decided_estimate if consistent else _contradicted_estimate
        return estimator(e, source)
    point, interval, basis = _revealed_only_estimate(e, heads)
    if e.accuracy[1] is None:
        basis += "; no held-out labeled rows (dataset.holdout_fraction or too few labels)"
    return point, interval, basis


def _revealed_rows(queries: list[dict], predicted: np.ndarray) -> list[dict]:
    """Each revealed label, with every head's prediction of its row."""
    return [
        {
            "datum_id": q["datum_id"],
            "label": q["label"],
            "head_predictions": predicted[q["datum_id"]].tolist(),
            "information_gain": q["information_gain"],
        }
        for q in queries
    ]


def build_report(
    choice: dict,
    probs: np.ndarray,
    holdout_accuracy: list[float],
    holdout_size: int,
    label_values: np.ndarray,
    default_score: float,
    class_prior: np.ndarray | None = None,
) -> dict:
    """The report for one run: the chosen head, the evidence, an accuracy estimate, a verdict.

    `choice` is the active query's result; with `holdout_scores` (the chosen head's confidence
    on each held-out row, scored as `atc_score` says) the target accuracy is estimated by ATC.
    `class_prior` (each class's share, in `label_values` order) caps the estimate at the
    accuracy the chosen head's predicted class shares allow (module docstring); None: no cap.
    """
    e, atc, source = _evidence(choice, probs, holdout_accuracy, holdout_size, label_values)
    # One revealed label against the chosen head means no head is the true rule everywhere.
    consistent = not e.revealed or e.agreement[e.head] == 1.0
    decided = e.posterior >= DECIDED
    point, interval, basis = _estimate(e, source, probs.shape[1], consistent, decided)
    balance = {}
    if class_prior is not None:
        bound, fields = _class_balance(probs[:, e.head], class_prior, len(label_values))
        uncapped = {"uncapped_estimate": round(point, 4),
                    "uncapped_interval": [round(end, 4) for end in interval]}  # fmt: skip
        balance = {"class_balance": fields | uncapped}
        if point > bound:
            basis += f"; {CAPPED}"
        revealed_low = _revealed_only_estimate(e, probs.shape[1])[1][0]
        slack = share_noise(class_prior, len(probs))
        point, interval = _capped(point, interval, bound, slack, revealed_low)
    submit = consistent and interval[0] >= default_score
    return {
        "chosen_head": e.head,
        **({"chosen_rule": choice["hypotheses"][e.head]} if "hypotheses" in choice else {}),
        "head_posterior": choice["posterior"],
        "revealed": _revealed_rows(choice["queries"], e.predicted),
        "labels_revealed": len(e.revealed),
        "head_agreement_with_revealed": e.agreement,
        "holdout_accuracy": holdout_accuracy,
        "target_head_agreement": round(e.agree, 4),
        **atc,
        "estimated_target_accuracy": round(point, 4),
        "estimate_interval_90": [round(interval[0], 4), round(interval[1], 4)],
        "estimate_basis": basis,
        **balance,
        "default_score": default_score,
        "chosen_head_matches_every_revealed_label": consistent,
        "revealed_labels_decided": bool(decided),
        "recommendation": "submit" if submit else "keep the default (do not submit)",
        "rule_version": RULE_VERSION,
    }


def summary_line(report: dict) -> str:
    low, high = report["estimate_interval_90"]
    rule = report.get("chosen_rule", f"head {report['chosen_head']}")
    return (
        f"{rule.capitalize()} (posterior {max(report['head_posterior']):.3f}) with "
        f"{report['labels_revealed']} revealed labels; estimated target accuracy "
        f"{report['estimated_target_accuracy']:.3f} [{low:.3f}, {high:.3f}] against the default "
        f"{report['default_score']}: {report['recommendation']}."
    )


def write_report(report: dict, path: Path, overwrite: bool) -> Path:
    """Write the report as JSON; like the CSV, an existing report is never replaced silently."""
    text = json.dumps(report, indent=2) + "\n"
    return write_atomically(Path(path), text.encode(), overwrite)
