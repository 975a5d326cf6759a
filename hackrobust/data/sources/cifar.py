"""CIFAR-10 airplane, automobile, bird and cat from `<data_dir>/cifar10_4class`."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from hackrobust.data.sources.archive import cached_arrays, decode_zip_images, read_index
from hackrobust.data.sources.errors import SourceUnavailableError
from hackrobust.data.sources.pool import ImagePool

CLASS_IDS = {"airplane": 0, "automobile": 1, "bird": 2, "cat": 3}


def load_cifar4_pool(data_dir: str | PathLike, split: str = "train") -> ImagePool:
    """(N, 3, 32, 32) images with CIFAR-10 ids (airplane 0, automobile 1, bird 2, cat 3).

    Reads `cifar10_4class_jpg.zip` and `index.csv` ("train": 20,000, "test": 4,000). The JPEGs
    are decoded once, then kept as an .npz under `$HACKROBUST_CACHE_DIR/sources`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(data_dir).expanduser() / "cifar10_4class"
    archive, index = folder / "cifar10_4class_jpg.zip", folder / "index.csv"
    if not (archive.is_file() and index.is_file()):
        raise SourceUnavailableError(
            "CIFAR-10 (4 classes)", folder, "cifar10_4class_jpg.zip and index.csv", "synthetic"
        )

    def build() -> dict[str, np.ndarray]:
        rows = [r for r in read_index(index) if r["split"] == split]
        images = decode_zip_images(archive, [r["path"] for r in rows], "RGB", 32)
        return {"images": images, "labels": np.array([int(r["class_id"]) for r in rows])}

    arrays = cached_arrays(archive, f"cifar4-{split}", build)
    return ImagePool(arrays["images"].astype(np.float32) / 255.0, arrays["labels"].astype(np.int64))
