"""The hackathon42 folder layout, and the in-memory record of one dataset.

A dataset folder holds::

    X_labeled.npy     (N_l, ...)  float   labeled inputs, images (N, C, H, W) or vectors (N, D)
    y_labeled.npy     (N_l,)      int     labels, any integer values ({0, 1}, {0, 2}, {4, 5, 6}...)
    X_unlabeled.npy   (N_u, ...)  float   unlabeled inputs
    X_val.npy         (N_t, ...)  float   the target set to label (the CSV follows its row order)

and, optionally, an answer key that is only ever used to score (never to train or select)::

    y_val.npy                 (N_t,)    true target labels, in label values
    features_val.npy          (N_t, F)  the label each candidate feature implies, per target row
    features_unlabeled.npy    (N_u, F)  the same for the unlabeled rows
    metadata.json             generator name, feature names, the true feature, seed, mix rates...
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hackrobust.utils.folders import new_folder

X_LABELED = "X_labeled.npy"
Y_LABELED = "y_labeled.npy"
X_UNLABELED = "X_unlabeled.npy"
X_TARGET = "X_val.npy"
Y_TARGET = "y_val.npy"
FEATURES_TARGET = "features_val.npy"
FEATURES_UNLABELED = "features_unlabeled.npy"
METADATA = "metadata.json"

REQUIRED_FILES = (X_LABELED, Y_LABELED, X_UNLABELED, X_TARGET)


@dataclass
class HackathonData:
    """One dataset in memory. Labels are kept in their original integer values."""

    x_labeled: np.ndarray
    y_labeled: np.ndarray
    x_unlabeled: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray | None = None
    features_unlabeled: np.ndarray | None = None
    features_target: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def label_values(self) -> np.ndarray:
        """Sorted distinct label values of the labeled set: class index i means label_values[i]."""
        return np.unique(self.y_labeled)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_labeled.shape[1:])

    @property
    def has_answer_key(self) -> bool:
        return self.y_target is not None


def save_hackathon_dir(data: HackathonData, path: str | os.PathLike) -> Path:
    """Write `data` to `path` atomically: a reader never sees a half-written folder.

    Refuses to replace an existing folder; remove it first if that is what you want.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; remove it or choose another path.")
    with new_folder(path) as tmp:
        arrays = {
            X_LABELED: data.x_labeled,
            Y_LABELED: data.y_labeled,
            X_UNLABELED: data.x_unlabeled,
            X_TARGET: data.x_target,
            Y_TARGET: data.y_target,
            FEATURES_UNLABELED: data.features_unlabeled,
            FEATURES_TARGET: data.features_target,
        }
        for name, array in arrays.items():
            if array is not None:
                np.save(tmp / name, array, allow_pickle=False)
        (tmp / METADATA).write_text(json.dumps(data.metadata, indent=2, sort_keys=True) + "\n")
    return path
