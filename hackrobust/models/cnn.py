"""A small CNN for MNIST-sized images of any shape (1x28x28, 1x28x56, 3x32x64...)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
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
    blocks: int = 2,
    channels_last: bool = False,
) -> MultiHeadClassifier:
    """`blocks` conv blocks (channels `width`, doubling each block; each halves the image),
    adaptive pooling to a `pool` grid, one hidden layer.

    Pooling to a grid (not to 1x1) keeps *where* things are: on a two-digit image the heads must
    be able to tell the left digit from the right one. A third block (with `pool` 3x3, what is
    left of 28x28) adds depth and a wider receptive field, for features that overlap in the
    image such as overlaid digits (see `model=auto`'s `cnn_blocks`).

    `channels_last`: keep the conv weights and activations in NHWC order, which oneDNN's CPU
    convolutions (and CUDA's tensor cores) run faster; the results are the same up to rounding.
    """
    if len(input_shape) != 3:
        raise ValueError(f"small_cnn takes images (C, H, W), got input shape {tuple(input_shape)}")
    if blocks < 1:
        raise ValueError(f"small_cnn needs at least one conv block, got blocks={blocks}")
    if min(input_shape[1:]) < 2**blocks:
        raise ValueError(
            f"{blocks} conv blocks halve a {tuple(input_shape[1:])} image to nothing; "
            "use fewer blocks"
        )
    widths = [input_shape[0]] + [width * 2**i for i in range(blocks)]
    trunk = nn.Sequential(
        *(_conv_block(c_in, c_out) for c_in, c_out in pairwise(widths)),
        nn.AdaptiveAvgPool2d(tuple(pool)),
        nn.Flatten(),
        nn.Linear(widths[-1] * pool[0] * pool[1], hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )
    if channels_last:  # the same modules and weights' names: checkpoints load either way
        trunk = trunk.to(memory_format=torch.channels_last)
        trunk.register_forward_pre_hook(_channels_last_input)
    return MultiHeadClassifier(trunk, hidden, num_classes, num_heads)


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    """Images (B, C, H, W) laid out channels-last in memory; same shape, same values."""
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
