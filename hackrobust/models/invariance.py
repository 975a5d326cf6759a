"""Input symmetries known from a dataset's description, built into the trunk.

On the `*_random_row` datasets the digit and its cue sit on random sides of the image, so the
label cannot depend on *which* side holds what. Without that prior, "the class shown on the left"
and "the class shown on the right" are, like "digit" and "cue", two rules that fit the labeled set
and disagree on every decorrelated row, and diversity methods find that simpler positional pair.
Averaging the trunk's features over the symmetry group (the Reynolds operator) makes every head
invariant to it, which rules the positional rules out and leaves digit-versus-cue.
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

    def __init__(self, trunk: nn.Module, symmetry: str):
        super().__init__()
        if symmetry not in SYMMETRIES:
            raise ValueError(f"unknown symmetry {symmetry!r}; choose one of {sorted(SYMMETRIES)}")
        self.trunk = trunk
        self.symmetry = symmetry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetry == "swap_halves" and x.shape[-1] % 2:
            raise ValueError(f"swap_halves needs an even image width, got {x.shape[-1]}")
        both = self.trunk(torch.cat([x, SYMMETRIES[self.symmetry](x)]))
        original, transformed = both.chunk(2)
        return (original + transformed) / 2
