"""MNIST from its IDX files under `<data_dir>/MNIST/raw` (.gz or not), downloaded when absent.

The files are parsed with numpy rather than through torchvision, whose md5 check of the `.gz`
files rejects a recompressed but otherwise identical copy.
"""

from __future__ import annotations

import functools
import gzip
import logging
from os import PathLike
from pathlib import Path

import numpy as np

from hackrobust.data.sources.errors import SourceUnavailableError
from hackrobust.data.sources.pool import ImagePool

log = logging.getLogger(__name__)

_PREFIX = {"train": "train", "test": "t10k"}
_MAGIC = {"images": 2051, "labels": 2049}


def _find(raw: Path, stem: str) -> Path | None:
    """The uncompressed file if present (faster to read), else the `.gz`, else None."""
    for name in (stem, f"{stem}.gz"):
        if (raw / name).is_file():
            return raw / name
    return None


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse an IDX file (images: (N, 28, 28) uint8, labels: (N,) uint8); ValueError if corrupt."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:  # not gzip, or a truncated stream
        raise ValueError(f"{path} cannot be read: {error}") from error
    magic = int.from_bytes(data[:4], "big")
    if magic != _MAGIC[kind]:
        raise ValueError(
            f"{path} is not an IDX {kind} file (magic number {magic}, expected {_MAGIC[kind]})"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {array.size} values for shape {dims}")
    return array.reshape(dims)


def _download(root: Path, split: str) -> str:
    """Let torchvision fetch the IDX files into `<root>/MNIST/raw`; the error text if it fails."""
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=split == "train", download=True)
    except Exception as error:  # offline, a read-only folder, a mirror down
        log.warning("MNIST download into %s failed: %s", root, error)
        return f"download failed: {error}"
    return ""


def _paths(raw: Path, split: str) -> dict[str, Path | None]:
    prefix = _PREFIX[split]
    return {
        "images": _find(raw, f"{prefix}-images-idx3-ubyte"),
        "labels": _find(raw, f"{prefix}-labels-idx1-ubyte"),
    }


def _absent(raw: Path, split: str, reason: str = "") -> SourceUnavailableError:
    prefix = _PREFIX[split]
    expected = f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]"
    return SourceUnavailableError("MNIST", raw, expected, "digits", reason)


@functools.lru_cache(maxsize=4)
def _read(raw: Path, split: str) -> ImagePool:
    paths = _paths(raw, split)
    if None in paths.values():
        raise _absent(raw, split)
    images = read_idx(paths["images"], "images").astype(np.float32)[:, None] / np.float32(255)
    labels = read_idx(paths["labels"], "labels").astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(
            f"{paths['images']} has {len(images)} images but {paths['labels']} {len(labels)} labels"
        )
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller of the cache
    return ImagePool(images, labels)


def load_mnist_pool(
    data_dir: str | PathLike, split: str = "train", download: bool = True
) -> ImagePool:
    """MNIST `split` ("train": 60,000, "test": 10,000) as (N, 1, 28, 28) float32 in [0, 1].

    Reads `<data_dir>/MNIST/raw`; when the files are absent and `download` is true, torchvision
    tries to fetch them there first. Parsed once per process: the arrays are read-only.
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    raw = Path(data_dir).expanduser().resolve() / "MNIST" / "raw"
    if download and None in _paths(raw, split).values():
        reason = _download(raw.parent.parent, split)
        if None in _paths(raw, split).values():
            raise _absent(raw, split, reason)
    return _read(raw, split)
