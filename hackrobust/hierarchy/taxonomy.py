"""The iNat2021 folder layout, parsed once into flat numpy arrays.

A split folder holds one sub-folder per species, named by an id and the 7 taxonomic levels::

    train/00000_Animalia_Annelida_Clitellata_Crassiclitellata_Lumbricidae_Lumbricus_terrestris/
        0a1b2c....jpg

Level n (1 = kingdom ... 7 = species) has one class per distinct root-to-node path, and classes
are numbered in the challenge's order: the sorted root-to-node name tuples, which is the
challenge's "concatenate the names from the root, sort alphabetically" (the challenge's dataset
code sorts these tuples; the two orders agree unless a name is a prefix of a same-level name).
On the real data level 2 (phylum) has 13 classes.

Everything is kept in a few numpy arrays (paths as one bytes array, an (N, 7) int64 node matrix),
not per-image Python objects, so forked DataLoader workers share the pages instead of copying
them as reference counts change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

LEVEL_NAMES = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
NUM_LEVELS = len(LEVEL_NAMES)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FOLDER_FORMAT = "NNNNN_Kingdom_Phylum_Class_Order_Family_Genus_epithet"

OnError = Literal["raise", "skip"]


class TaxonomyError(ValueError):
    """A species folder or image that cannot be labelled; the message names it and the fix."""


@dataclass(frozen=True, eq=False)
class Taxonomy:
    """Images of one split and their node index at every level.

    Attributes:
        root: the split folder.
        paths: (N,) bytes, each image's path relative to `root` (``folder/file``), file-system
            encoded; `path(i)` gives the full path.
        nodes: (N, 7) int64, ``nodes[i, n - 1]`` is image i's level-n class index.
        names: per level, the (C_n, n) array of root-to-node names of its classes, in class order.
        skipped: (path, reason) of every folder or file left out under ``on_error="skip"``.
    """

    root: Path
    paths: np.ndarray
    nodes: np.ndarray
    names: tuple[np.ndarray, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        on_error: OnError = "raise",
        verify: bool = False,
        extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    ) -> Taxonomy:
        """Scan `root` (one sub-folder per species, see the module doc).

        A folder whose name is not the 8 ``_``-separated parts of ``NNNNN_Kingdom_..._epithet``,
        an empty species folder, or a file that is not an image (by extension, and with
        ``verify=True`` by `PIL.Image.verify`, which reads the header) raises `TaxonomyError`
        naming it under ``on_error="raise"``, and is logged and left out under ``"skip"``. Hidden
        entries (``.DS_Store``) and plain files next to the species folders are ignored.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise TaxonomyError(
                f"{root} is not a directory: point it at a split folder holding one "
                f"{FOLDER_FORMAT} folder per species"
            )
        extensions = tuple(e.lower() for e in extensions)
        skipped: list[tuple[str, str]] = []

        def bad(path: Path, reason: str) -> None:
            if on_error == "raise":
                raise TaxonomyError(f"{path}: {reason}; or pass on_error='skip' to leave it out")
            log.warning("skipping %s: %s", path, reason)
            skipped.append((str(path), reason))

        folders, species, files = _scan_species(root, extensions, verify, bad)
        if not folders:
            raise TaxonomyError(
                f"{root} holds no usable species folder ({len(skipped)} skipped): expected "
                f"sub-folders named {FOLDER_FORMAT} with images inside"
            )

        folder_nodes, names = _number_nodes(np.array(species))
        paths = _image_paths(folders, files)
        nodes = np.repeat(folder_nodes, [len(images) for images in files], axis=0)
        nodes.flags.writeable = False
        return cls(root=root, paths=paths, nodes=nodes, names=names, skipped=tuple(skipped))

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        return self.root / os.fsdecode(self.paths[index])

    def labels(self, level: int) -> np.ndarray:
        """(N,) int64 level-`level` class index of each image (a read-only view)."""
        return self.nodes[:, _check_level(level) - 1]

    def groups(self, level: int) -> np.ndarray:
        """(N,) int64 level-`level` group id of each image: the same numbering as `labels`."""
        return self.labels(level)

    def num_classes(self, level: int) -> int:
        return len(self.names[_check_level(level) - 1])

    def class_names(self, level: int, sep: str = "_") -> list[str]:
        """Level-`level` class names, root-to-node names joined by `sep`, in class order."""
        return [sep.join(row) for row in self.names[_check_level(level) - 1]]

    def counts(self, level: int) -> np.ndarray:
        """(C,) number of images in each level-`level` class."""
        return np.bincount(self.labels(level), minlength=self.num_classes(level))

    def ancestors(self, level: int, of_level: int) -> np.ndarray:
        """(C_level,) the level-`of_level` class of each level-`level` class (of_level <= level)."""
        if _check_level(of_level) > _check_level(level):
            raise ValueError(f"of_level ({of_level}) must not be deeper than level ({level})")
        out = np.empty(self.num_classes(level), dtype=np.int64)
        out[self.labels(level)] = self.labels(of_level)
        return out


def _check_level(level: int) -> int:
    if not 1 <= int(level) <= NUM_LEVELS:
        raise ValueError(f"level must be 1 (kingdom) to {NUM_LEVELS} (species), got {level}")
    return int(level)


def _parse_folder_name(name: str) -> tuple[str, ...] | str:
    """The 7 level names of a species folder, or the reason it is not one."""
    parts = name.split("_")
    if len(parts) != NUM_LEVELS + 1:
        return (
            f"folder name has {len(parts)} '_'-separated parts, expected {NUM_LEVELS + 1} "
            f"({FOLDER_FORMAT}); rename it (no '_' inside a level name)"
        )
    if not parts[0].isdigit():
        return f"folder name must start with a numeric id ({FOLDER_FORMAT}); rename it"
    if not all(parts[1:]):
        return f"folder name has an empty level name ({FOLDER_FORMAT}); rename it"
    return tuple(parts[1:])


def _scan_species(
    root: Path, extensions: tuple[str, ...], verify: bool, bad
) -> tuple[list[str], list[tuple[str, ...]], list[list[str]]]:
    """(folder names, level names, image file names) of every usable species folder of `root`,
    in name order; `bad(path, reason)` is called for each unusable folder or file."""
    folders, species, files = [], [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        levels = _parse_folder_name(entry.name)
        if isinstance(levels, str):
            bad(Path(entry.path), levels)
            continue
        images = _list_images(Path(entry.path), extensions, verify, bad)
        if not images:
            bad(Path(entry.path), "no usable image in this species folder; add or remove it")
            continue
        folders.append(entry.name)
        species.append(levels)
        files.append(images)
    return folders, species, files


def _image_paths(folders: list[str], files: list[list[str]]) -> np.ndarray:
    """(N,) bytes ``folder/file`` of every image, file-system encoded, folder by folder."""
    return np.array(
        [
            os.fsencode(f"{folder}/{image}")
            for folder, images in zip(folders, files, strict=True)
            for image in images
        ]
    )


def _list_images(folder: Path, extensions: tuple[str, ...], verify: bool, bad) -> list[str]:
    images = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if not entry.is_file():
            bad(path, "not a file: a species folder holds images only; move it out")
        elif not entry.name.lower().endswith(extensions):
            bad(path, f"not an image extension ({', '.join(extensions)}); remove or convert it")
        elif verify and (reason := _unreadable(path)):
            bad(path, f"unreadable image ({reason}); replace or remove it")
        else:
            images.append(entry.name)
    return images


def _unreadable(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for a broken file
        return f"{type(error).__name__}: {error}"
    return ""


def _number_nodes(species: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(S, 7) names -> (S, 7) int64 node index per level, and each level's sorted name rows.

    A level-n key is the names joined by NUL, which sorts exactly as the tuple of names.
    """
    nodes = np.empty(species.shape, dtype=np.int64)
    names = []
    for level in range(1, NUM_LEVELS + 1):
        keys = np.array(["\0".join(row) for row in species[:, :level]])
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        nodes[:, level - 1] = inverse.reshape(-1)
        names.append(species[first, :level])
    return nodes, tuple(names)
