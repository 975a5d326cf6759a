"""Image sources the dataset generators draw from.

Every source returns an `ImagePool`: float32 images in [0, 1], shape (N, C, H, W), with the
source's own integer class ids. Real sets are read from a data directory; each kind also has an
offline stand-in (scikit-learn's digits, procedural objects and faces) for tests and demos.
"""

from __future__ import annotations

from os import PathLike

from hackrobust.data.sources.cifar import load_cifar4_pool
from hackrobust.data.sources.digits import load_digits_pool
from hackrobust.data.sources.errors import SourceUnavailableError
from hackrobust.data.sources.faces import load_smiles_pool
from hackrobust.data.sources.mnist import load_mnist_pool
from hackrobust.data.sources.pool import ImagePool
from hackrobust.data.sources.synthetic import synthetic_faces_pool, synthetic_objects_pool

__all__ = [
    "ImagePool",
    "SourceUnavailableError",
    "digit_pool",
    "face_pool",
    "load_cifar4_pool",
    "load_digits_pool",
    "load_mnist_pool",
    "load_smiles_pool",
    "object_pool",
    "synthetic_faces_pool",
    "synthetic_objects_pool",
]


def _unknown(kind: str, source: str, valid: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown {kind} source {source!r}: dataset.source must be one of {valid}")


def digit_pool(
    source: str, data_dir: str | PathLike, split: str, download: bool = True
) -> ImagePool:
    """Digits 1x28x28: "mnist" (real, from data_dir) or "digits" (scikit-learn's, offline)."""
    if source == "mnist":
        return load_mnist_pool(data_dir, split, download=download)
    if source == "digits":
        return load_digits_pool(split)
    raise _unknown("digit", source, ("mnist", "digits"))


def object_pool(source: str, data_dir: str | PathLike, split: str) -> ImagePool:
    """Objects 3x32x32 with CIFAR ids: "cifar" (real) or "synthetic" (offline)."""
    if source == "cifar":
        return load_cifar4_pool(data_dir, split)
    if source == "synthetic":
        return synthetic_objects_pool(split)
    raise _unknown("object", source, ("cifar", "synthetic"))


def face_pool(source: str, data_dir: str | PathLike, split: str) -> ImagePool:
    """Faces 1x64x64, 1 smiling: "smiles" (real LFW crops) or "synthetic" (offline)."""
    if source == "smiles":
        return load_smiles_pool(data_dir, split)
    if source == "synthetic":
        return synthetic_faces_pool(split)
    raise _unknown("face", source, ("smiles", "synthetic"))
