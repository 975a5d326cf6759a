"""Top-k disagreement (ACE): disagree only where disagreeing is cheapest.

Daniels et al. 2025; official code github.com/oliveradk/diverse-gen (`losses/ace.py`, mode
"topk"). For each unlabeled example, the cost of a disagreeing pseudo-labelling is the summed
cross-entropy of the heads against one assignment of labels that do not all agree; the example
keeps its cheapest assignment. Only the k = r x batch cheapest examples are trained on, r a
lower bound on the unlabeled mix rate, warmed up linearly from 0 (their `MixRateScheduler`).
Unlike DivDis and D-BAT, it does not push every unlabeled example apart, which is why it holds
up when few unlabeled examples are decorrelated. Defaults as there: aux weight 1, r 0.5
(set `method.mix_rate_lower_bound` to a bound you trust for your unlabeled set).

`per_assignment=true` is their `group_mix_rates` mode: each disagreeing assignment takes its own
r / G x batch cheapest examples (G assignments), and the G means are summed. The pooled top-k can
fill all k slots with one assignment, so two heads may settle as AND and OR of the features (they
disagree only as (0, 1)); one quota per assignment asks for every kind of disagreement.
"""

from __future__ import annotations

import itertools

import torch

from hackrobust.methods.base import BaseMethod


def disagreeing_assignments(num_heads: int, num_classes: int) -> torch.Tensor:
    """Every label assignment (heads,) in which not all heads agree: (G, heads)."""
    combos = torch.tensor(list(itertools.product(range(num_classes), repeat=num_heads)))
    return combos[~(combos == combos[:, :1]).all(dim=1)]


def topk_disagreement_loss(
    logits: torch.Tensor, rate: float, assignments: torch.Tensor, per_assignment: bool = False
) -> torch.Tensor:
    """Mean cost of the round(rate x B) cheapest examples, each at its cheapest disagreement.

    logits: (B, H, K); assignments: (G, H) from `disagreeing_assignments`. With `per_assignment`,
    the sum over assignments of the mean cost of its round(rate / G x B) cheapest examples.
    """
    k = round(rate * len(logits) / (len(assignments) if per_assignment else 1))
    if k == 0:
        return logits.sum() * 0.0
    log_probs = logits.float().log_softmax(dim=-1)  # (B, H, K)
    heads = torch.arange(logits.shape[1], device=logits.device)
    cost = -log_probs[:, heads, assignments.to(logits.device)].sum(dim=-1)  # (B, G)
    if per_assignment:
        return torch.topk(cost, k, dim=0, largest=False).values.mean(dim=0).sum()
    cheapest = cost.min(dim=1).values
    return torch.topk(cheapest, k, largest=False).values.mean()


class TopKDisagreement(BaseMethod):
    uses_unlabeled = True

    def __init__(
        self,
        *args,
        num_heads: int = 2,
        mix_rate_lower_bound: float = 0.5,
        aux_weight: float = 1.0,
        warmup_fraction: float = 1.0,
        per_assignment: bool = False,
        **kwargs,
    ):
        if num_heads < 2:
            raise ValueError(
                f"top-k disagreement needs at least 2 heads, got num_heads={num_heads}"
            )
        if not 0 <= mix_rate_lower_bound <= 1:
            raise ValueError(f"mix_rate_lower_bound must be in [0, 1], got {mix_rate_lower_bound}")
        super().__init__(*args, num_heads=num_heads, **kwargs)
        self.mix_rate_lower_bound = mix_rate_lower_bound
        self.aux_weight = aux_weight
        self.warmup_fraction = warmup_fraction
        self.per_assignment = per_assignment
        self.register_buffer(
            "assignments",
            disagreeing_assignments(num_heads, self.net.num_classes),
            persistent=False,
        )

    def current_rate(self) -> float:
        """r x progress, progress going linearly from 0 to 1 over `warmup_fraction` of training."""
        if self.warmup_fraction <= 0 or self._trainer is None:  # no trainer: no schedule to follow
            return self.mix_rate_lower_bound
        total = max(1, self.trainer.estimated_stepping_batches)
        progress = min(1.0, self.global_step / (self.warmup_fraction * total))
        return self.mix_rate_lower_bound * progress

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        n_labeled = len(labeled["x"])
        logits = self(torch.cat([labeled["x"], unlabeled["x"]]))
        labeled_logits = logits[:n_labeled]
        cross_entropy = self.heads_cross_entropy(labeled_logits, labeled["y"])
        rate = self.current_rate()
        disagreement = topk_disagreement_loss(
            logits[n_labeled:], rate, self.assignments, self.per_assignment
        )
        loss = cross_entropy + self.aux_weight * disagreement
        extras = {
            "xent": cross_entropy,
            "disagreement": disagreement,
            "mix_rate": torch.tensor(rate),
        }
        return loss, labeled_logits, extras
