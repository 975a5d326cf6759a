"""The rules the active query chooses among: each head, and any rule a method builds from them.

A method whose heads combine into further rules (DivDis's class-pair switches,
hackrobust/methods/pair_switches.py) overrides `add_hypotheses` and `hypothesis_names`; when
the query chooses such a rule, its accuracy is tracked by a metric of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class Hypotheses:
    """A mixin of `BaseMethod`: the hypotheses, their probabilities, the chosen one's accuracy."""

    num_heads: int

    def add_hypotheses(self, probs: torch.Tensor) -> torch.Tensor:
        """(B, heads, K) -> (B, hypotheses, K): the heads and any rule built from them that the
        active query may choose; the heads alone by default."""
        return probs

    def hypothesis_names(self, label_values=None) -> list[str]:
        """One name per hypothesis of `add_hypotheses`, in its order."""
        return [f"head {h}" for h in range(self.num_heads)]

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Each hypothesis's class probabilities: (B, hypotheses, K)."""
        return self.add_hypotheses(self(x).float().softmax(dim=-1))

    def _build_rule_accuracy(self, num_classes: int, stages: Sequence[str]) -> None:
        """The chosen hypothesis's accuracy per stage, for when it is no head."""
        self.rule_accuracy = nn.ModuleDict(
            {f"{s}_acc": MulticlassAccuracy(num_classes, average="micro") for s in stages}
        )

    def _chosen_accuracy(
        self, stage: str, logits: torch.Tensor, y: torch.Tensor, head_metrics: nn.ModuleList
    ) -> MulticlassAccuracy:
        """The chosen hypothesis's accuracy metric: its head's (updated by the caller), or the
        rule's own, updated here from the heads' probabilities."""
        chosen = int(self.chosen_head)
        if chosen < self.num_heads:
            return head_metrics[chosen]
        metric = self.rule_accuracy[f"{stage}_acc"]
        probs = self.add_hypotheses(logits.detach().float().softmax(dim=-1))
        metric.update(probs[:, chosen], y)
        return metric
