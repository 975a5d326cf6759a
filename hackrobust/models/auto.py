"""`model=auto`: an MLP for vectors, the small CNN for images."""

from __future__ import annotations

from collections.abc import Sequence

from hackrobust.models.classifier import MultiHeadClassifier
from hackrobust.models.cnn import small_cnn
from hackrobust.models.invariance import SymmetrizedTrunk
from hackrobust.models.mlp import mlp


def auto(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    cnn_width: int = 32,
    cnn_blocks: int = 2,
    cnn_hidden: int = 128,
    symmetry: str | None = None,
    halves_apart: bool = False,
    channels_last: bool = False,
) -> MultiHeadClassifier:
    """`cnn_width`: the small CNN's first-block channels (its cost grows with the square).

    `cnn_blocks`: its conv blocks; with 3 it pools to a 3x3 grid (what is left of 28x28).

    `cnn_hidden`: the width of its hidden layer, the features every head reads.

    `channels_last`: the small CNN's memory layout (see `small_cnn`).

    `symmetry`: make the trunk invariant to it (see `hackrobust.models.invariance`).

    `halves_apart`: with `symmetry` swap_halves, the convolutions see each half of the image on
    its own: the same invariance at half the convolutions (see `hackrobust.models.invariance`).
    """
    if len(input_shape) == 1:
        model = mlp(input_shape, num_classes, num_heads)
    elif len(input_shape) == 3:
        pool = (4, 4) if cnn_blocks < 3 else (3, 3)
        model = small_cnn(
            input_shape,
            num_classes,
            num_heads,
            width=cnn_width,
            hidden=cnn_hidden,
            blocks=cnn_blocks,
            pool=pool,
            channels_last=channels_last,
        )
    else:
        raise ValueError(
            "model=auto knows vectors (D,) and images (C, H, W); "
            f"got input shape {tuple(input_shape)}"
        )
    if symmetry is not None:
        model.trunk = SymmetrizedTrunk(model.trunk, symmetry, halves_apart)
    return model
