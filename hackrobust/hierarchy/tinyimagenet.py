"""Tiny-ImageNet-200 with its WordNet taxonomy, written in the iNat2021 layout (a stand-in).

    python -m hackrobust.hierarchy.tinyimagenet SOURCE_DIR OUT_DIR [--seed N]

`SOURCE_DIR` is the ``tinyimagenet_hier`` folder: ``index.csv`` (path, split, wnid, class_idx),
``hierarchy_wordnet30.csv`` (wnid, ..., path_names_root_to_leaf as ``a > b > ... > leaf``) and
``tinyimagenet200_subset.zip``. Each class becomes one species whose 7 levels are its WordNet path:
the `skip_top` generic roots are dropped (entity, physical_entity, object, whole), the next 6
ancestors are levels 1 to 6 (deeper ones are cut; a short path repeats its last ancestor), and the
class itself is level 7. With the default ``skip_top=4``, level 2 has 18 classes (artifact /
instrumentality, living_thing / organism, food / produce, ...).

``OUT_DIR/train`` is long-tailed over species (geometric counts, seeded) and ``OUT_DIR/test`` is
balanced over species, drawn from the official val split. Only the chosen images are read from the
zip, and their JPEG bytes are copied as they are.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hackrobust.hierarchy.synthetic import long_tail_counts
from hackrobust.hierarchy.taxonomy import NUM_LEVELS
from hackrobust.utils.folders import new_folder

log = logging.getLogger(__name__)

INDEX = "index.csv"
HIERARCHY = "hierarchy_wordnet30.csv"
ARCHIVE = "tinyimagenet200_subset.zip"


def species_levels(path_names: list[str], skip_top: int = 4, sep: str = "-") -> tuple[str, ...]:
    """The 7 level names of a WordNet root-to-leaf path (see the module doc), ``_`` -> `sep`."""
    leaf = path_names[-1]
    ancestors = path_names[min(skip_top, len(path_names) - 2) : -1] or [leaf]
    ancestors = (ancestors + ancestors[-1:] * NUM_LEVELS)[: NUM_LEVELS - 1]
    return tuple(name.replace("_", sep) for name in (*ancestors, leaf))


def build_tinyimagenet_tree(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int = 0,
    max_train: int = 100,
    min_train: int = 5,
    test_per_species: int = 50,
    skip_top: int = 4,
    only_animals: bool = False,
) -> Path:
    """Write ``out_dir/{train,test}/NNNNN_L1_..._L7/*.jpg`` and ``out_dir/metadata.json``.

    Train counts run geometrically from `max_train` to `min_train` images per species, dealt to
    species in a seeded random order; the test split has `test_per_species` images of every
    species (fewer if a class has fewer, the same for all). `only_animals` keeps the 59 animal
    classes. Refuses an existing `out_dir`; the folder appears complete or not at all.
    """
    source, out = Path(source_dir), Path(out_dir)
    _check_arguments(source, out, max_train, min_train, test_per_species)
    species, wnids = _read_species(source / HIERARCHY, skip_top, only_animals)
    images = _read_index(source / INDEX, set(wnids))
    rng = np.random.default_rng(seed)
    train_counts = long_tail_counts(len(wnids), max_train, min_train, rng)
    n_test = min(test_per_species, *(len(images["val", w]) for w in wnids))
    if n_test < test_per_species:
        log.warning("test split cut to %d images per species (the smallest class)", n_test)

    with new_folder(out) as tmp:
        with zipfile.ZipFile(source / ARCHIVE) as archive:
            records = _write_species(
                archive, rng, zip(species, wnids, train_counts, strict=True), images, n_test, tmp
            )
        metadata = {
            "source": "tinyimagenet_hier",
            "seed": seed,
            "max_train": max_train,
            "min_train": min_train,
            "test_per_species": n_test,
            "skip_top": skip_top,
            "only_animals": only_animals,
            "species": records,
        }
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return out


def _check_arguments(
    source: Path, out: Path, max_train: int, min_train: int, test_per_species: int
) -> None:
    """Refuse a source folder that lacks a file, impossible counts, or an existing `out`."""
    for name in (INDEX, HIERARCHY, ARCHIVE):
        if not (source / name).is_file():
            raise FileNotFoundError(
                f"{source / name} not found: source_dir must be the tinyimagenet_hier folder "
                f"holding {INDEX}, {HIERARCHY} and {ARCHIVE}"
            )
    if not 1 <= min_train <= max_train or test_per_species < 1:
        raise ValueError(
            f"need 1 <= min_train <= max_train and test_per_species >= 1, got {min_train}, "
            f"{max_train}, {test_per_species}: every species needs an image in each split"
        )
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another out_dir")


def _write_species(
    archive: zipfile.ZipFile,
    rng: np.random.Generator,
    classes: Iterable[tuple[tuple[str, ...], str, int]],
    images: dict[tuple[str, str], list[str]],
    n_test: int,
    tmp: Path,
) -> list[dict]:
    """Copy each class's chosen images into ``tmp/{train,test}/NNNNN_L1_..._L7/``; `classes`
    holds (level names, wnid, train count) in id order. Per class, draws its train images, then
    its test images. Returns a record (folder, wnid, train count) per species."""
    records = []
    for i, (levels, wnid, count) in enumerate(classes):
        folder = "_".join((f"{i:05d}", *levels))
        train = _pick(rng, images["train", wnid], count)
        test = _pick(rng, images["val", wnid], n_test)
        for split, members in (("train", train), ("test", test)):
            _copy_members(archive, members, tmp / split / folder)
        records.append({"folder": folder, "wnid": wnid, "train": len(train)})
    return records


def _read_species(
    path: Path, skip_top: int, only_animals: bool
) -> tuple[list[tuple[str, ...]], list[str]]:
    """Species level names and wnids, sorted by level names (so ids follow the class order)."""
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if not only_animals or r["is_animal"] == "1"]
    if not rows:
        raise ValueError(f"{path} lists no {'animal ' if only_animals else ''}class")
    pairs = sorted(
        (species_levels(r["path_names_root_to_leaf"].split(" > "), skip_top), r["wnid"])
        for r in rows
    )
    species = [levels for levels, _ in pairs]
    if len(set(species)) != len(species):
        raise ValueError(f"two classes of {path} map to the same 7 levels; change skip_top")
    return species, [wnid for _, wnid in pairs]


def _read_index(path: Path, wnids: set[str]) -> dict[tuple[str, str], list[str]]:
    """Zip member paths by (split, wnid), sorted, for the wanted classes."""
    members = defaultdict(list)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["wnid"] in wnids:
                members[row["split"], row["wnid"]].append(row["path"])
    for split in ("train", "val"):
        missing = sorted(w for w in wnids if not members[split, w])
        if missing:
            raise ValueError(f"{path} lists no {split} image for {', '.join(missing[:5])}")
    return {key: sorted(value) for key, value in members.items()}


def _pick(rng: np.random.Generator, members: list[str], count: int) -> list[str]:
    chosen = rng.choice(len(members), size=min(int(count), len(members)), replace=False)
    return [members[j] for j in np.sort(chosen)]


def _copy_members(archive: zipfile.ZipFile, members: list[str], folder: Path) -> None:
    folder.mkdir(parents=True)
    for member in members:
        try:
            data = archive.read(member)
        except KeyError as error:
            raise ValueError(
                f"{archive.filename} has no member {member} listed in {INDEX}: the csv and the "
                "zip do not match; fetch both from the same source"
            ) from error
        (folder / f"{Path(member).stem}.jpg").write_bytes(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hackrobust.hierarchy.tinyimagenet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source_dir", help="the tinyimagenet_hier folder")
    parser.add_argument("out_dir", help="the folder to create (it must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=100)
    parser.add_argument("--min-train", type=int, default=5)
    parser.add_argument("--test-per-species", type=int, default=50)
    parser.add_argument("--skip-top", type=int, default=4)
    parser.add_argument("--only-animals", action="store_true")
    args = parser.parse_args(argv)
    out = build_tinyimagenet_tree(
        args.source_dir,
        args.out_dir,
        seed=args.seed,
        max_train=args.max_train,
        min_train=args.min_train,
        test_per_species=args.test_per_species,
        skip_top=args.skip_top,
        only_animals=args.only_animals,
    )
    print(f"wrote {out} (seed {args.seed})")


if __name__ == "__main__":
    main()
