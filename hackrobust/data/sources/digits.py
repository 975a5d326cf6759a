"""scikit-learn's bundled 8x8 digits, upscaled to MNIST's 28x28: the offline digit source."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hackrobust.data.sources.pool import ImagePool

TEST_FRACTION = 0.3
SPLIT_SEED = 0


def load_digits_pool(split: str = "train", size: int = 28) -> ImagePool:
    """The 1,797 digits, split 70/30 per class with a fixed seed, as (N, 1, size, size) in [0, 1].

    The 8x8 digits are padded to 10x10 (MNIST digits sit inside a margin too), then upscaled
    bilinearly.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)

    rng = np.random.default_rng(SPLIT_SEED)
    in_test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        in_test[rows[: int(round(TEST_FRACTION * len(rows)))]] = True
    keep = in_test if split == "test" else ~in_test

    padded = np.pad(images[keep], ((0, 0), (1, 1), (1, 1)))
    upscaled = F.interpolate(
        torch.from_numpy(padded)[:, None], size=(size, size), mode="bilinear", align_corners=False
    )
    return ImagePool(upscaled.clamp_(0, 1).numpy(), labels[keep])
