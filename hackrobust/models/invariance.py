"""Input symmetries known from a dataset's description, built into the trunk.

On the `*_random_row` datasets the digit and its cue sit on random sides of the image, so the
label cannot depend on *which* side holds what. Without that prior, "the class shown on the left"
and "the class shown on the right" are, like "digit" and "cue", two rules that fit the labeled set
and disagree on every decorrelated row, and diversity methods find that simpler positional pair.
Averaging the trunk's features over the symmetry group (the Reynolds operator) makes every head
invariant to it, which rules the positional rules out and leaves digit-versus-cue.

`halves_apart` buys the same invariance at half the convolutions: the conv layers see each half
of the image on its own (as a separate image), so the feature maps of the swapped image are those
of the original with their halves exchanged, and only the layers after the convolutions run on
both orders. The convolutions then never look across the seam: a prior that holds where the
halves are separate objects (a digit and its cue), as on the random-side sets.
"""

from __future__ import annotations

import torch
from torch import nn


def swap_halves(x: torch.Tensor) -> torch.Tensor:
    """The image with its left and right halves exchanged (width must be even)."""
    left, right = x.chunk(2, dim=-1)
    return torch.cat([right, left], dim=-1)


SYMMETRIES = {"swap_halves": swap_halves}


class SymmetrizedTrunk(nn.Module):
    """``(trunk(x) + trunk(g(x))) / 2`` for an involution `g`: features invariant under `g`."""

    def __init__(self, trunk: nn.Module, symmetry: str, halves_apart: bool = False):
        super().__init__()
        if symmetry not in SYMMETRIES:
            raise ValueError(f"unknown symmetry {symmetry!r}; choose one of {sorted(SYMMETRIES)}")
        self.trunk = trunk
        self.symmetry = symmetry
        # How many of the trunk's first layers run on each half apart (see the module docstring);
        # a count, not a submodule, so the weights keep their one name in checkpoints.
        self.conv_count = conv_count(trunk) if halves_apart else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetry == "swap_halves" and x.shape[-1] % 2:
            raise ValueError(f"swap_halves needs an even image width, got {x.shape[-1]}")
        if self.conv_count is not None:
            return self._halves_apart(x)
        both = self.trunk(torch.cat([x, SYMMETRIES[self.symmetry](x)]))
        original, transformed = both.chunk(2)
        return (original + transformed) / 2

    def _halves_apart(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's convolutions on each half, then its other layers on both orders."""
        left, right = self._convolve(torch.cat(x.chunk(2, dim=-1))).chunk(2)
        rest = self.trunk[self.conv_count :]
        both = rest(torch.cat([torch.cat([left, right], -1), torch.cat([right, left], -1)]))
        original, transformed = both.chunk(2)
        return (original + transformed) / 2

    def _convolve(self, halves: torch.Tensor) -> torch.Tensor:
        convolutions = self.trunk[: self.conv_count]
        first = next(convolutions.parameters())
        if first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last):
            halves = halves.contiguous(memory_format=torch.channels_last)  # as small_cnn's hook
        return convolutions(halves)


def conv_count(trunk: nn.Module) -> int:
    """How many layers a sequential trunk has before its first adaptive pooling (the small
    CNN's conv blocks)."""
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    if isinstance(trunk, nn.Sequential):
        for index, layer in enumerate(trunk):
            if isinstance(layer, pools):
                return index
    raise ValueError(
        "model.halves_apart needs the small CNN's trunk (conv blocks, then adaptive pooling); "
        f"got {type(trunk).__name__} (use model=auto on images, or halves_apart=false)"
    )
