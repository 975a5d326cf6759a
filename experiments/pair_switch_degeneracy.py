"""Why DivDis cannot tell its heads apart with three classes: every rule pair, counted.

    python experiments/pair_switch_degeneracy.py [--classes 3] [--mix-rates 0.25 0.5 0.75]

A set whose rows carry two features (left and right digit), each one of K classes, and whose
labeled rows have left == right: a head is any rule from the K x K cells (left, right) to a
class that is right on the labeled cells (a, a). On an unlabeled set with `mix_rate`
decorrelated rows (left and right independent, uniform) and the rest correlated, the script
computes the mutual information of every pair of such rules, exactly, and counts the pairs
that reach the least value (DivDis's diversity term at its optimum), and among them those
where each head predicts, on a cell (a, b), a or b (what the `plausible_weight` term asks).
With K = 2 the least value belongs to "left and right" alone; with K = 3 it belongs to 720
pairs, and the plausible ones are 8: per pair of classes, which head follows the left digit
(hackrobust/methods/pair_switches.py). Writes experiments/results/pair_switch_degeneracy.md.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def cells(k: int) -> list[tuple[int, int]]:
    """The (left, right) cells, left-major."""
    return [(a, b) for a in range(k) for b in range(k)]


def rules(k: int) -> np.ndarray:
    """Every rule right on the labeled cells: (R, k*k) class per cell (left-major)."""
    grid = cells(k)
    off = [i for i, (a, b) in enumerate(grid) if a != b]
    table = []
    for values in itertools.product(range(k), repeat=len(off)):
        rule = np.array([a for a, _ in grid])
        rule[off] = values
        table.append(rule)
    return np.array(table)


def pair_information(table: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Mutual information (nats) of every pair of rules under the cell weights: (R, R)."""
    one_hot = np.eye(k)[table]  # (R, cells, k)
    joint = np.einsum("icx,jcy->ijxy", one_hot * weights[None, :, None], one_hot)
    first, second = joint.sum(3, keepdims=True), joint.sum(2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (first * second)), 0.0)
    return terms.sum(axis=(2, 3))


def count(k: int, mix_rate: float) -> dict:
    grid = cells(k)
    weights = np.array([mix_rate / k**2 + (1 - mix_rate) / k * (a == b) for a, b in grid])
    table = rules(k)
    information = pair_information(table, weights, k)
    least = np.isclose(information, information.min(), rtol=0, atol=1e-12)
    lefts, rights = np.array([a for a, _ in grid]), np.array([b for _, b in grid])
    left = int(np.flatnonzero((table == lefts).all(1))[0])
    right = int(np.flatnonzero((table == rights).all(1))[0])
    # A rule is plausible when it predicts one of the cell's two digits everywhere.
    plausible = ((table == lefts) | (table == rights)).all(axis=1)
    return {
        "classes": k,
        "mix_rate": mix_rate,
        "rules": len(table),
        "least_information": float(information.min()),
        "left_right_is_least": bool(least[left, right]),
        "least_pairs": int(least.sum()),
        "plausible_least_pairs": int((least & plausible[:, None] & plausible[None, :]).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--mix-rates", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--out", type=Path, default=RESULTS / "pair_switch_degeneracy.md")
    args = parser.parse_args()
    rows = [count(k, m) for k in args.classes for m in args.mix_rates]
    lines = [
        "# DivDis's diversity optimum with two and three classes",
        "",
        "Regenerate: `python experiments/pair_switch_degeneracy.py` (exact; no data, no training).",
        "",
        "Ordered pairs of rules (right on the labeled cells left == right) at the least mutual",
        "information on an unlabeled set with the given share of decorrelated rows; plausible:",
        "both rules predict one of the cell's two digits on every cell.",
        "",
        "| classes | mix rate | rules | least MI (nats) | left/right at the least | "
        "pairs at the least | plausible pairs at the least |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['classes']} | {r['mix_rate']} | {r['rules']} | {r['least_information']:.4f} | "
            f"{'yes' if r['left_right_is_least'] else 'no'} | {r['least_pairs']} | "
            f"{r['plausible_least_pairs']} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
