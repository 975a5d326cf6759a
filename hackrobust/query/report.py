"""Submit or abstain: a JSON report next to the CSV, and the line printed at the end of a run.

With several heads, the revealed rows are where the heads disagree, so they say *which* head
is right, not how accurate it is. The estimate combines both: on rows where every head agrees
the chosen head is as accurate as on held-out labeled data (a); on the rows where they
disagree it is right as often if it is the true head (posterior P) and wrong as often if not:

    accuracy ~= agree x a + (1 - agree) x (P x a + (1 - P) x (1 - a))

The interval carries the uncertainty of `a` (a 90% Wilson interval on the held-out size). When
the chosen head contradicts a revealed label, no head is the true rule everywhere: the
disagreement part is then scored from the revealed labels (Beta posterior) and the verdict is
to keep the default. With one head there is nothing to choose; its revealed labels are a small
random sample, scored with a Beta(1 + right, 1 + wrong) posterior.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from hackrobust.submission import write_atomically

Z90 = 1.6449


def wilson(successes: float, n: int, z: float = Z90) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def build_report(
    choice: dict,
    probs: np.ndarray,
    holdout_accuracy: list[float],
    holdout_size: int,
    label_values: np.ndarray,
    default_score: float,
) -> dict:
    """The report for one run: the chosen head, the evidence, an accuracy estimate, a verdict."""
    head = choice["head"]
    predicted = label_values[probs.argmax(-1)]  # (N, H)
    revealed = {q["datum_id"]: q["label"] for q in choice["queries"]}
    agreement = [
        float(np.mean([predicted[d, h] == y for d, y in revealed.items()])) if revealed else None
        for h in range(probs.shape[1])
    ]
    a = holdout_accuracy[head]
    # One revealed label against the chosen head means no head is the true rule everywhere.
    consistent = not revealed or agreement[head] == 1.0
    if probs.shape[1] > 1 and consistent:
        agree = float((predicted == predicted[:, :1]).all(axis=1).mean())
        p_right = choice["posterior"][head]

        def estimate(acc: float) -> float:
            return agree * acc + (1 - agree) * (p_right * acc + (1 - p_right) * (1 - acc))

        low_a, high_a = wilson(a * holdout_size, holdout_size)
        point, interval = estimate(a), (estimate(low_a), estimate(high_a))
        basis = "head agreement on the target set, held-out accuracy, head posterior"
    elif probs.shape[1] > 1:
        # The revealed rows sample the disagreement region: score the head there directly.
        agree = float((predicted == predicted[:, :1]).all(axis=1).mean())
        right = round(agreement[head] * len(revealed))
        beta = stats.beta(1 + right, 1 + len(revealed) - right)
        point = agree * a + (1 - agree) * float(beta.mean())
        interval = (
            agree * a + (1 - agree) * float(beta.ppf(0.05)),
            agree * a + (1 - agree) * float(beta.ppf(0.95)),
        )
        basis = "the chosen head contradicts a revealed label: its accuracy where the heads disagree is estimated from the revealed labels"
    else:
        right = sum(predicted[d, 0] == y for d, y in revealed.items())
        wrong = len(revealed) - right
        beta = stats.beta(1 + right, 1 + wrong)
        point, interval = float(beta.mean()), (float(beta.ppf(0.05)), float(beta.ppf(0.95)))
        basis = "revealed labels only (one head)"
    submit = consistent and interval[0] >= default_score
    return {
        "chosen_head": head,
        "head_posterior": choice["posterior"],
        "revealed": [
            {
                "datum_id": q["datum_id"],
                "label": q["label"],
                "head_predictions": predicted[q["datum_id"]].tolist(),
                "information_gain": q["information_gain"],
            }
            for q in choice["queries"]
        ],
        "labels_revealed": len(revealed),
        "head_agreement_with_revealed": agreement,
        "holdout_accuracy": holdout_accuracy,
        "estimated_target_accuracy": round(point, 4),
        "estimate_interval_90": [round(interval[0], 4), round(interval[1], 4)],
        "estimate_basis": basis,
        "default_score": default_score,
        "chosen_head_matches_every_revealed_label": consistent,
        "recommendation": "submit" if submit else "keep the default (do not submit)",
    }


def summary_line(report: dict) -> str:
    low, high = report["estimate_interval_90"]
    return (
        f"Head {report['chosen_head']} (posterior {max(report['head_posterior']):.3f}) with "
        f"{report['labels_revealed']} revealed labels; estimated target accuracy "
        f"{report['estimated_target_accuracy']:.3f} [{low:.3f}, {high:.3f}] against the default "
        f"{report['default_score']}: {report['recommendation']}."
    )


def write_report(report: dict, path: Path, overwrite: bool) -> Path:
    """Write the report as JSON; like the CSV, an existing report is never replaced silently."""
    text = json.dumps(report, indent=2) + "\n"
    return write_atomically(Path(path), text.encode(), overwrite)
