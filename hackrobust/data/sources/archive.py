"""Decode a zip of JPEGs once, keep the arrays in an .npz cache next time."""

from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    default = Path.home() / ".cache" / "hackrobust"
    return Path(os.environ.get("HACKROBUST_CACHE_DIR", default)) / "sources"


def read_index(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def decode_zip_images(archive: Path, members: list[str], mode: str, size: int) -> np.ndarray:
    """Decode `members` of `archive` as `mode` ("L" or "RGB") size x size images, (N, C, H, W)."""
    from PIL import Image

    names = {}
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            names.setdefault(name.split("/", 1)[-1] if name.count("/") else name, name)
            names.setdefault(name, name)
        out = np.empty((len(members), 1 if mode == "L" else 3, size, size), dtype=np.uint8)
        for i, member in enumerate(members):
            image = Image.open(io.BytesIO(zf.read(names.get(member, member)))).convert(mode)
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            array = np.asarray(image)
            out[i] = array[None] if mode == "L" else array.transpose(2, 0, 1)
    return out


def cached_arrays(key_source: Path, name: str, build) -> dict[str, np.ndarray]:
    """Arrays from `<cache>/<name>-<size>-<mtime>.npz`, built by `build()` and saved atomically."""
    stat = key_source.stat()
    target = cache_root() / f"{name}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if target.is_file():
        with np.load(target) as saved:
            return dict(saved)
    arrays = build()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".npz", dir=target.parent)
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, target)
    return arrays
