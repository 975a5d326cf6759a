"""Per-group accuracy and the mean accuracy of the worst groups, correct under DDP.

torchmetrics' fairness metrics are binary only; this one takes any number of classes and groups.
Counts are one-hot sums (a weighted `bincount` is not deterministic on CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics import Metric


class GroupAccuracy(Metric):
    """Accumulates correct and total counts per group id in [0, num_groups).

    Rows with a negative group id are ignored (unknown group). `compute` returns the per-group
    accuracy, NaN for groups never seen.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, num_groups: int, **kwargs):
        super().__init__(**kwargs)
        if num_groups < 1:
            raise ValueError(f"num_groups must be positive, got {num_groups}")
        self.num_groups = num_groups
        self.add_state("correct", torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_groups, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> None:
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=-1)
        known = groups >= 0
        if bool((groups[known] >= self.num_groups).any()):
            raise ValueError(f"group ids must be < num_groups={self.num_groups}")
        one_hot = torch.nn.functional.one_hot(groups[known], self.num_groups)
        hits = (preds[known] == target[known]).long()
        self.correct += (one_hot * hits[:, None]).sum(dim=0)
        self.total += one_hot.sum(dim=0)

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.double()  # 0/0 gives NaN: group never seen

    def worst_k(self, fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5)) -> dict[float, float]:
        """Mean accuracy of the ceil(f x seen groups) worst seen groups, for each fraction f."""
        return worst_k_accuracy(self.compute(), fractions)


def worst_k_accuracy(
    per_group: torch.Tensor, fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5)
) -> dict[float, float]:
    """Mean of the worst ceil(f x n) accuracies among the n groups that have examples."""
    seen = per_group[~torch.isnan(per_group)].sort().values
    if len(seen) == 0:
        return {f: math.nan for f in fractions}
    return {f: seen[: max(1, math.ceil(f * len(seen)))].mean().item() for f in fractions}
