"""A trunk with N classification heads: the one model shape every method shares."""

from __future__ import annotations

import torch
from torch import nn


class MultiHeadClassifier(nn.Module):
    """`trunk` maps inputs to (B, feature_dim) features; `num_heads` linear heads read them.

    `forward` returns logits of shape (B, num_heads, num_classes), also when there is one head,
    so methods never special-case the head count.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, num_classes: int, num_heads: int = 1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}")
        self.trunk = trunk
        self.num_classes = num_classes
        self.num_heads = num_heads
        self.heads = nn.Linear(feature_dim, num_heads * num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.heads(self.features(x))
        return logits.view(len(x), self.num_heads, self.num_classes)
