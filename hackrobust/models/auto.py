"""`model=auto`: an MLP for vectors, the small CNN for images."""

from __future__ import annotations

from collections.abc import Sequence

from hackrobust.models.classifier import MultiHeadClassifier
from hackrobust.models.cnn import small_cnn
from hackrobust.models.mlp import mlp


def auto(
    input_shape: Sequence[int], num_classes: int, num_heads: int = 1, cnn_width: int = 32
) -> MultiHeadClassifier:
    """`cnn_width`: the small CNN's first-block channels (its cost grows with the square)."""
    if len(input_shape) == 1:
        return mlp(input_shape, num_classes, num_heads)
    if len(input_shape) == 3:
        return small_cnn(input_shape, num_classes, num_heads, width=cnn_width)
    raise ValueError(
        f"model=auto knows vectors (D,) and images (C, H, W); got input shape {tuple(input_shape)}"
    )
