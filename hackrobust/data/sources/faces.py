"""LFW face crops, smiling (1) or not (0), from `<data_dir>/smiles_lfw`."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from hackrobust.data.sources.archive import cached_arrays, decode_zip_images, read_index
from hackrobust.data.sources.errors import SourceUnavailableError
from hackrobust.data.sources.pool import ImagePool

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_smiles_pool(data_dir: str | PathLike, split: str = "train") -> ImagePool:
    """(N, 1, 64, 64) grayscale faces, label 1 smiling; a fixed per-class 80/20 split.

    Reads `SMILEs.zip` and `labels.csv` (13,165 faces; the set has no split of its own). The
    JPEGs are decoded once, resized to 64x64 where they differ, then kept as an .npz under
    `$HACKROBUST_CACHE_DIR/sources`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(data_dir).expanduser() / "smiles_lfw"
    archive, index = folder / "SMILEs.zip", folder / "labels.csv"
    if not (archive.is_file() and index.is_file()):
        raise SourceUnavailableError(
            "SMILEs faces", folder, "SMILEs.zip and labels.csv", "synthetic"
        )

    def build() -> dict[str, np.ndarray]:
        rows = read_index(index)
        images = decode_zip_images(archive, [r["path"] for r in rows], "L", 64)
        return {"images": images, "labels": np.array([int(r["smiling"]) for r in rows])}

    arrays = cached_arrays(archive, "smiles", build)
    labels = arrays["labels"].astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    in_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        in_test[rows[: round(TEST_FRACTION * len(rows))]] = True
    keep = in_test if split == "test" else ~in_test
    return ImagePool(arrays["images"][keep].astype(np.float32) / 255.0, labels[keep])
