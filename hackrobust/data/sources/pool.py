"""The common return type of every image source."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImagePool:
    """Images (N, C, H, W) float32 in [0, 1] and their class ids (N,) int64."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(f"ImagePool images must be (N, C, H, W), got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"ImagePool has {len(self.images)} images but {len(self.labels)} labels"
            )

    def of_class(self, class_id: int) -> np.ndarray:
        """Images whose label is `class_id`; raises if there are none."""
        chosen = self.images[self.labels == class_id]
        if len(chosen) == 0:
            raise ValueError(
                f"no image of class {class_id} in this pool (classes present: "
                f"{sorted(set(self.labels.tolist()))})"
            )
        return chosen
