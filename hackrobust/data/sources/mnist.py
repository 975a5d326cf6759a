"""MNIST from its IDX files under `<data_dir>/MNIST/raw` (.gz or not), downloaded when absent."""

from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path

import numpy as np

from hackrobust.data.sources.errors import SourceUnavailableError
from hackrobust.data.sources.pool import ImagePool

log = logging.getLogger(__name__)

_PREFIX = {"train": "train", "test": "t10k"}
_MAGIC = {"images": 2051, "labels": 2049}


def _find(raw: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (raw / name).is_file():
            return raw / name
    return None


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse an IDX file (images: (N, 28, 28) uint8, labels: (N,) uint8)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != _MAGIC[kind]:
        raise ValueError(
            f"{path} is not an IDX {kind} file (magic number {magic}, expected {_MAGIC[kind]})"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
    offset = 4 + 4 * len(dims)
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {array.size} values for shape {dims}")
    return array.reshape(dims)


@functools.lru_cache(maxsize=4)
def _load(raw: Path, split: str, download: bool) -> ImagePool:
    stems = {
        kind: f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        for kind in ("images", "labels")
    }
    paths = {kind: _find(raw, stem) for kind, stem in stems.items()}
    if None in paths.values() and download:
        _download(raw.parent.parent, split)
        paths = {kind: _find(raw, stem) for kind, stem in stems.items()}
    if None in paths.values():
        raise SourceUnavailableError(
            "MNIST", raw, f"{stems['images']}[.gz] and {stems['labels']}[.gz]", "digits"
        )
    images = read_idx(paths["images"], "images").astype(np.float32)[:, None] / 255.0
    labels = read_idx(paths["labels"], "labels").astype(np.int64)
    return ImagePool(images, labels)


def _download(root: Path, split: str) -> None:
    """torchvision's downloader writes the IDX files into <root>/MNIST/raw when online."""
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=split == "train", download=True)
    except Exception as error:  # offline, or a mirror down: the caller reports what is missing
        log.warning("MNIST download into %s failed: %s", root, error)


def load_mnist_pool(data_dir, split: str = "train", download: bool = True) -> ImagePool:
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _load(Path(data_dir).expanduser().resolve() / "MNIST" / "raw", split, download)
