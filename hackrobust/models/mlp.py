"""A multilayer perceptron for vector inputs (embeddings, 2-D toy points)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from hackrobust.models.classifier import MultiHeadClassifier


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    hidden: Sequence[int] = (128, 128),
    dropout: float = 0.0,
) -> MultiHeadClassifier:
    """Flattens the input, then `Linear -> ReLU` per hidden width."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = size
    return MultiHeadClassifier(nn.Sequential(*layers), width, num_classes, num_heads)
