"""A frozen backbone's features of a split, extracted once and cached on disk.

The head-only path trains linear heads on these. A cache file is keyed by the backbone's name and
weights file's bytes, the split's image list and the transform, so a changed one of those is
extracted anew; files are written atomically, so parallel jobs at worst extract the same features
twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from hackrobust.hierarchy.backbones import FrozenBackbone
from hackrobust.hierarchy.dataset import HierarchicalDataset
from hackrobust.hierarchy.taxonomy import Taxonomy

log = logging.getLogger(__name__)


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_key(backbone: FrozenBackbone, taxonomy: Taxonomy, transform: Callable) -> str:
    """sha256 of (backbone name, weights bytes, split root and image paths, the transform)."""
    digest = hashlib.sha256()
    parts = (backbone.name, file_digest(backbone.weights), str(taxonomy.root), repr(transform))
    for part in parts:
        digest.update(part.encode() + b"\0")
    digest.update(taxonomy.paths.tobytes())
    return digest.hexdigest()


def default_device() -> torch.device:
    """This process's GPU (``LOCAL_RANK``, which DDP launchers set), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@torch.inference_mode()
def extract_features(
    backbone: nn.Module,
    taxonomy: Taxonomy,
    transform: Callable,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """(N, D) float32 features of every image of `taxonomy`, in its order (eval mode, no grad)."""
    device = torch.device(device) if device is not None else default_device()
    loader = DataLoader(
        HierarchicalDataset(taxonomy, transform=transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    backbone = backbone.to(device).eval()
    chunks, done, every = [], 0, max(1, len(loader) // 10)
    for step, batch in enumerate(loader, 1):
        chunks.append(backbone(batch["x"].to(device, non_blocking=True)).float().cpu())
        done += len(batch["x"])
        if step % every == 0 or step == len(loader):  # about ten lines, whatever the size
            log.info("Features: %d of %d images", done, len(loader.dataset))
    return torch.cat(chunks)


def cached_features(
    taxonomy: Taxonomy,
    backbone: FrozenBackbone,
    transform: Callable,
    cache_dir: str | os.PathLike,
    batch_size: int = 256,
    num_workers: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """The backbone features of `taxonomy` from ``cache_dir/features``, extracted on a miss."""
    key = cache_key(backbone, taxonomy, transform)
    path = Path(cache_dir).expanduser() / "features" / f"{key[:24]}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") == key and len(saved["features"]) == len(taxonomy):
            return saved["features"]
        log.warning("%s does not match this split; extracting again", path)
    log.info(
        "Extracting %s features of %d images into %s", backbone.name, len(taxonomy), path
    )  # fmt: skip
    network = backbone.build()
    features = extract_features(network, taxonomy, transform, batch_size, num_workers, device)
    _save_atomically({"key": key, "features": features}, path)
    return features


def _save_atomically(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
