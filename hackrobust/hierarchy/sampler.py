"""Sample classes, and groups within each class, closer to uniform than the data has them.

Each example is drawn with probability ``p(class) * p(group | class) / n(class, group)``, where

    p(class)         ∝ n(class) ** (1 - class_temperature)
    p(group | class) ∝ n(class, group) ** (1 - group_temperature)   (over the groups in the class)

A temperature of 0 keeps the natural frequency, 1 makes the classes (or the groups inside each
class) equally likely, and values in between interpolate on a log scale (a temperature of 0.5:
square-root frequencies); above 1 rare ones are favoured. With both at 0 every example has
probability 1/N. Groups are counted per (class, group) cell, so a group that spans several classes
is one unit in each of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def hierarchical_probabilities(
    class_labels: np.ndarray,
    group_labels: np.ndarray,
    class_temperature: float = 1.0,
    group_temperature: float = 1.0,
) -> np.ndarray:
    """(N,) float64 probability of drawing each example (see the module doc); sums to 1."""
    _, class_of, class_counts = np.unique(class_labels, return_inverse=True, return_counts=True)
    _, group_of = np.unique(group_labels, return_inverse=True)
    cell_key = class_of.reshape(-1) * (int(group_of.max()) + 1) + group_of.reshape(-1)
    _, first, cell_of, cell_counts = np.unique(
        cell_key, return_index=True, return_inverse=True, return_counts=True
    )
    cell_class = class_of.reshape(-1)[first]

    p_class = class_counts.astype(np.float64) ** (1.0 - class_temperature)
    p_class /= p_class.sum()
    cell_mass = cell_counts.astype(np.float64) ** (1.0 - group_temperature)
    p_cell = (
        p_class[cell_class] * cell_mass / np.bincount(cell_class, weights=cell_mass)[cell_class]
    )
    probabilities = (p_cell / cell_counts)[cell_of.reshape(-1)]
    return probabilities / probabilities.sum()


class HierarchicalBalancedSampler(Sampler[int]):
    """Draw `num_samples` indices per epoch with replacement, by `hierarchical_probabilities`.

    Args:
        class_labels, group_labels: (N,) integer labels, e.g. ``taxonomy.labels(2)`` and
            ``taxonomy.groups(7)``.
        num_samples: indices per epoch over all replicas together (default N).
        class_temperature, group_temperature: 0 natural, 1 balanced (see the module doc).
        seed: a non-negative int; the draw of an epoch depends on (seed, epoch) only.
        num_replicas, rank: default to torch.distributed's world size and rank when it is
            initialised, else 1 and 0.

    Every replica computes the same global draw of ``len(self) * num_replicas`` indices (the
    `num_samples` drawn, padded by repeating its start) and yields positions
    ``rank::num_replicas``: shards are disjoint and each has exactly ``len(self)`` indices. Call
    `set_epoch` before each epoch (Lightning does it); with Lightning DDP, pass
    ``use_distributed_sampler=False`` to the Trainer so it does not wrap this sampler again.
    """

    def __init__(
        self,
        class_labels,
        group_labels,
        num_samples: int | None = None,
        class_temperature: float = 1.0,
        group_temperature: float = 1.0,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        classes = _as_labels(class_labels, "class_labels")
        groups = _as_labels(group_labels, "group_labels")
        if len(classes) != len(groups):
            raise ValueError(
                f"class_labels has {len(classes)} entries but group_labels {len(groups)}: pass "
                "one class and one group per example"
            )
        for name, value in (("class", class_temperature), ("group", group_temperature)):
            if not math.isfinite(value):
                raise ValueError(f"{name}_temperature must be finite, got {value}")
        self.num_samples = len(classes) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.probabilities = hierarchical_probabilities(
            classes, groups, class_temperature, group_temperature
        )
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas)

    def global_draw(self) -> np.ndarray:
        """The epoch's indices for all replicas, padded to ``len(self) * num_replicas``."""
        rng = np.random.default_rng([self.seed, self.epoch])
        draw = rng.choice(len(self.probabilities), size=self.num_samples, p=self.probabilities)
        return np.resize(draw, len(self) * self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_draw()[self.rank :: self.num_replicas].tolist())


def _as_labels(labels, name: str) -> np.ndarray:
    array = (
        labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    )
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    return array


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    dist = torch.distributed
    ready = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if ready else 1
    if rank is None:
        rank = dist.get_rank() if ready else 0
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
    return int(num_replicas), int(rank)
