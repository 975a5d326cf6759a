"""A dataset of tensors that hands out whole batches: no per-item Python in the training loop.

`DataLoader` calls `__getitems__` with the batch's indices when a dataset defines it; one fancy
index per tensor then builds the batch, and `pass_through` stands in for the collate function.
Because a plain sampler still picks the indices, Lightning can swap in its `DistributedSampler`.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorDict(Dataset):
    """Rows of equally long tensors, served as dict batches `{"idx", "x", "y", "group", ...}`."""

    def __init__(self, **tensors: torch.Tensor):
        lengths = {name: len(t) for name, t in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must have equal lengths, got {lengths}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: t[index] for name, t in self.tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {name: t[rows] for name, t in self.tensors.items()}


def pass_through(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate function for `TensorDict`: the batch is already built."""
    return batch
