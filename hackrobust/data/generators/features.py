"""Which class each feature of each row shows: all features agree, or a decorrelated mix."""

from __future__ import annotations

import numpy as np


def assign_features(
    rng: np.random.Generator, n: int, n_features: int, n_classes: int, mix_rate: float
) -> np.ndarray:
    """Class indices (n, n_features).

    round(mix_rate x n) rows are "mixed": drawn uniformly among the combinations whose features
    do not all agree. The others are "correlated": every feature shows one class, and classes
    are balanced (up to one row). Rows come shuffled.
    """
    if not 0 <= mix_rate <= 1:
        raise ValueError(f"mix rate must be in [0, 1], got {mix_rate}")
    if n_features < 2 or n_classes < 2:
        raise ValueError(f"need at least 2 features and 2 classes, got {n_features}, {n_classes}")
    n_mixed = round(mix_rate * n)
    correlated = (np.arange(n - n_mixed) % n_classes)[:, None]
    correlated = np.broadcast_to(correlated, (n - n_mixed, n_features))

    combos = np.stack(
        np.unravel_index(np.arange(n_classes**n_features), (n_classes,) * n_features), axis=1
    )
    mixed_combos = combos[~(combos == combos[:, :1]).all(axis=1)]
    mixed = mixed_combos[rng.integers(len(mixed_combos), size=n_mixed)]
    rows = np.concatenate([correlated, mixed]).astype(np.int64)
    return rows[rng.permutation(n)]


def is_mixed(features: np.ndarray) -> np.ndarray:
    """True where a row's features do not all agree."""
    return ~(features == features[:, :1]).all(axis=1)
