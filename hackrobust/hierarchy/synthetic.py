"""A tiny seeded tree in the iNat2021 layout, for tests and offline runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_KINGDOMS = {"Animalia": ("Arthropoda", "Chordata"), "Plantae": ("Bryophyta", "Tracheophyta")}
_RANKS = ("Class", "Order", "Family", "Genus")


def synthetic_species(num_species: int = 12, seed: int = 0) -> list[tuple[str, ...]]:
    """`num_species` distinct 7-level name tuples over 2 kingdoms and 4 phyla.

    Species are dealt round-robin to the phyla; below the phylum each species picks one of two
    children at every rank, so branches are shared and the tree is uneven.
    """
    rng = np.random.default_rng(seed)
    phyla = [(k, p) for k, children in _KINGDOMS.items() for p in children]
    branches = rng.integers(0, 2, size=(num_species, len(_RANKS)))
    species = []
    for i in range(num_species):
        kingdom, phylum = phyla[i % len(phyla)]
        path = [kingdom, phylum]
        for depth, rank in enumerate(_RANKS, start=1):
            path.append(f"{rank}{phylum[:3]}{''.join(map(str, branches[i, :depth]))}")
        species.append((*path, f"sp{i:02d}"))
    return species


def long_tail_counts(
    num_species: int, max_count: int, min_count: int, rng: np.random.Generator
) -> np.ndarray:
    """Geometric counts from `max_count` down to `min_count`, dealt to species in random order."""
    ratio = np.linspace(0.0, 1.0, num_species)
    counts = np.rint(max_count * (min_count / max_count) ** ratio).astype(np.int64)
    return rng.permutation(np.maximum(counts, min_count))


def write_synthetic_tree(
    root: str | os.PathLike,
    num_species: int = 12,
    max_images: int = 12,
    min_images: int = 1,
    size: int = 8,
    seed: int = 0,
) -> Path:
    """Write `root/NNNNN_Kingdom_..._epithet/*.{png,jpg}`: long-tailed, small random-colour images.

    Each species has a base colour plus per-image noise; images alternate PNG and JPEG. Returns
    `root`. The same arguments write the same tree.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    species = synthetic_species(num_species, seed)
    counts = long_tail_counts(num_species, max_images, min_images, rng)
    for i, (names, count) in enumerate(zip(species, counts, strict=True)):
        folder = root / "_".join((f"{i:05d}", *names))
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        noise = rng.integers(-30, 31, size=(count, size, size, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        for j, image in enumerate(pixels):
            suffix = ".png" if j % 2 == 0 else ".jpg"
            Image.fromarray(image).save(folder / f"img{j:04d}{suffix}")
    return root
