"""How much the heads' predictions on unlabeled data tell about each other, correct under DDP.

Used to select checkpoints without target labels: heads that fit the held-out labeled data and
carry little mutual information on the target inputs have found different rules.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

EPS = 1e-8


def mutual_information(joint: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
    """MI of each head pair from their joint (H, H, K, K) and marginals (H, K): -> (H, H).

    MI(h, g) = KL(joint(h, g) || marginal(h) x marginal(g)).
    """
    product = torch.einsum("hd,ge->hgde", marginal, marginal)
    return (joint * ((joint + EPS).log() - (product + EPS).log())).sum(dim=(-1, -2))


def pairwise_mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """MI between the predictions of each head pair over one batch, (B, H, K) -> (H, H)."""
    joint = torch.einsum("bhd,bge->hgde", probs, probs) / probs.shape[0]
    return mutual_information(joint, probs.mean(dim=0))


def mean_pairwise(matrix: torch.Tensor) -> torch.Tensor:
    """Mean of the strictly upper-triangular entries (every head pair once)."""
    rows, cols = torch.triu_indices(*matrix.shape, offset=1, device=matrix.device)
    return matrix[rows, cols].mean()


class HeadMutualInformation(Metric):
    """Mean pairwise mutual information of the heads' predictions over a whole epoch.

    `update(probs)` takes (B, heads, classes) probabilities; the joint distribution of each head
    pair is summed over every row seen (on every process), so the estimate does not depend on
    the batch size, unlike the per-batch term DivDis trains on.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, num_heads: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 2:
            raise ValueError(f"mutual information needs at least 2 heads, got {num_heads}")
        shape = (num_heads, num_heads, num_classes, num_classes)
        self.add_state("joint", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(
            "marginal",
            torch.zeros(num_heads, num_classes, dtype=torch.float64),
            dist_reduce_fx="sum",
        )
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor) -> None:
        probs = probs.detach().double()
        self.joint += torch.einsum("bhd,bge->hgde", probs, probs)
        self.marginal += probs.sum(dim=0)
        self.count += probs.shape[0]

    def compute(self) -> torch.Tensor:
        count = self.count.clamp(min=1)
        return mean_pairwise(mutual_information(self.joint / count, self.marginal / count)).float()
