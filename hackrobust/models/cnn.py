"""A small CNN for MNIST-sized images of any shape (1x28x28, 1x28x56, 3x32x64...)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from hackrobust.models.classifier import MultiHeadClassifier


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    width: int = 32,
    hidden: int = 128,
    pool: Sequence[int] = (4, 4),
    dropout: float = 0.0,
) -> MultiHeadClassifier:
    """Two conv blocks, adaptive pooling to a `pool` grid, one hidden layer.

    Pooling to a grid (not to 1x1) keeps *where* things are: on a two-digit image the heads must
    be able to tell the left digit from the right one.
    """
    if len(input_shape) != 3:
        raise ValueError(f"small_cnn takes images (C, H, W), got input shape {tuple(input_shape)}")
    channels = input_shape[0]
    trunk = nn.Sequential(
        _conv_block(channels, width),
        _conv_block(width, 2 * width),
        nn.AdaptiveAvgPool2d(tuple(pool)),
        nn.Flatten(),
        nn.Linear(2 * width * pool[0] * pool[1], hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )
    return MultiHeadClassifier(trunk, hidden, num_classes, num_heads)
