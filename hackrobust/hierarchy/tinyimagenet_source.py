"""Build the ``tinyimagenet_hier`` source folder from the public Tiny-ImageNet-200 archive.

    python -m hackrobust.hierarchy.tinyimagenet_source ARCHIVE OUT_DIR [--train-per-class 100]

Sources: Tiny-ImageNet-200 (Stanford CS231n, http://cs231n.stanford.edu/tiny-imagenet-200.zip;
64x64 images from ImageNet, Deng et al. 2009) and WordNet 3.0 (Princeton University; Miller
1995), read through NLTK (``pip install nltk && python -m nltk.downloader wordnet``; only this
command needs it). `hackrobust.hierarchy.tinyimagenet` reads the folder this writes:

- ``tinyimagenet200_subset.zip``: the first `train_per_class` train images of every class, by
  their number k in ``<wnid>_<k>.JPEG`` (0 to 99 by default), and the whole official val split,
  at their paths in the archive, JPEG bytes unchanged, stored uncompressed, sorted by path.
- ``index.csv``: path, split (train or val), wnid, class_idx; one row per member of that zip, in
  its order. class_idx is the line number (from 0) of the wnid in the archive's ``wnids.txt``.
- ``hierarchy_wordnet30.csv``: one row per class, in ``wnids.txt`` order: its WordNet root-to-leaf
  hypernym path as names and wnids (``a > b > ... > leaf``), depth (the number of nodes),
  is_animal / is_chordate (the path holds animal.n.01 n00015388 / chordate.n.01 n01466257), and
  leaf_has_multiple_hypernyms. Where a synset has several hypernyms the path follows the first
  one listed on its line of WordNet's ``data.noun``; NLTK's ``hypernyms()`` does not keep that
  order, so the pointers are read from that line. A node's name is its first lemma
  (``synset.lemmas()[0].name()``: ``Egyptian_cat``, where ``synset.name()`` is
  ``egyptian_cat.n.01``).
- ``wnids.txt`` and ``val_annotations.txt``: the archive's files, copied; ``words_200.txt``: the
  lines of its ``words.txt`` (``wnid<TAB>names``) for those wnids, in ``wnids.txt`` order.

The folder appears complete or not at all (built in a temporary sibling, then renamed); an
existing OUT_DIR is refused.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from hackrobust.hierarchy.tinyimagenet import ARCHIVE as SUBSET
from hackrobust.hierarchy.tinyimagenet import HIERARCHY, INDEX
from hackrobust.utils.folders import new_folder

ROOT = "tiny-imagenet-200"
ANIMAL, CHORDATE = "n00015388", "n01466257"
NLTK_HINT = "pip install nltk && python -m nltk.downloader wordnet"
INDEX_HEADER = ["path", "split", "wnid", "class_idx"]
HIERARCHY_HEADER = [
    "wnid",
    "class_idx",
    "name",
    "depth",
    "is_chordate",
    "is_animal",
    "path_names_root_to_leaf",
    "path_wnids_root_to_leaf",
    "leaf_has_multiple_hypernyms",
]
TEXT = ("utf-8", "surrogateescape")  # words.txt lines are copied byte for byte
TRAIN_IMAGE = re.compile(rf"{ROOT}/train/(n\d+)/images/\1_(\d+)\.JPEG")

# wnid -> ([(wnid, name), ...] from the root to that wnid, whether the wnid has several hypernyms)
WordNetLookup = Callable[[str], tuple[list[tuple[str, str]], bool]]
Member = tuple[str, str, str]  # (path in the archive, split, wnid)


def build_tinyimagenet_source(
    archive: str | os.PathLike,
    out_dir: str | os.PathLike,
    wordnet_lookup: WordNetLookup,
    train_per_class: int = 100,
) -> Path:
    """Write the ``tinyimagenet_hier`` folder `out_dir` from `archive` (tiny-imagenet-200.zip);
    `wordnet_lookup` gives each class's WordNet path (`nltk_wordnet_lookup` for the real one)."""
    out = Path(out_dir)
    if train_per_class < 1:
        raise ValueError(f"train_per_class must be at least 1, got {train_per_class}")
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another OUT_DIR")
    with zipfile.ZipFile(archive) as source:
        wnids = read_wnids(source)
        annotations = read_member(source, "val/val_annotations.txt")
        members = sorted(
            train_members(source.namelist(), wnids, train_per_class)
            + val_members(source.namelist(), parse_val_annotations(annotations, wnids))
        )
        words = words_lines(read_member(source, "words.txt").decode(*TEXT), wnids)
        hierarchy = [hierarchy_row(wnid, k, wordnet_lookup) for k, wnid in enumerate(wnids)]
        with new_folder(out) as tmp:
            write_subset_zip(source, [path for path, _, _ in members], tmp / SUBSET)
            class_idx = {wnid: k for k, wnid in enumerate(wnids)}
            index = [[path, split, wnid, class_idx[wnid]] for path, split, wnid in members]
            write_csv(tmp / INDEX, INDEX_HEADER, index)
            write_csv(tmp / HIERARCHY, HIERARCHY_HEADER, hierarchy)
            (tmp / "wnids.txt").write_bytes(read_member(source, "wnids.txt"))
            (tmp / "words_200.txt").write_text("".join(f"{line}\n" for line in words), *TEXT)
            (tmp / "val_annotations.txt").write_bytes(annotations)
    return out


def read_member(source: zipfile.ZipFile, name: str) -> bytes:
    """The bytes of ``tiny-imagenet-200/<name>`` in `source`."""
    try:
        return source.read(f"{ROOT}/{name}")
    except KeyError as error:
        raise ValueError(
            f"{source.filename} has no {ROOT}/{name}: pass the official tiny-imagenet-200.zip"
        ) from error


def read_wnids(source: zipfile.ZipFile) -> list[str]:
    """The class wnids, in the line order of the archive's ``wnids.txt``."""
    wnids = [line.strip() for line in read_member(source, "wnids.txt").decode().splitlines()]
    return [wnid for wnid in wnids if wnid]


def parse_val_annotations(text: bytes, wnids: list[str]) -> dict[str, str]:
    """Val file name -> wnid, from ``val_annotations.txt`` (file, wnid, 4 box ints per line)."""
    labels = dict(line.split("\t")[:2] for line in text.decode().splitlines() if line.strip())
    unknown = sorted(set(labels.values()) - set(wnids))
    if unknown:
        raise ValueError(f"val_annotations.txt names wnids not in wnids.txt: {unknown[:5]}")
    return labels


def train_members(names: list[str], wnids: list[str], per_class: int) -> list[Member]:
    """Each class's train images numbered lowest (``<wnid>_<k>.JPEG`` by k), `per_class` of them."""
    numbered = defaultdict(list)
    for name in names:
        match = TRAIN_IMAGE.fullmatch(name)
        if match:
            numbered[match[1]].append((int(match[2]), name))
    missing = [wnid for wnid in wnids if not numbered[wnid]]
    if missing:
        raise ValueError(f"the archive has no train image for {', '.join(missing[:5])}")
    return [
        (name, "train", wnid) for wnid in wnids for _, name in sorted(numbered[wnid])[:per_class]
    ]


def val_members(names: list[str], labels: dict[str, str]) -> list[Member]:
    """Every image of the official val split with its wnid."""
    present = set(names)
    members = [(f"{ROOT}/val/images/{file}", "val", wnid) for file, wnid in labels.items()]
    missing = [path for path, _, _ in members if path not in present]
    if missing:
        raise ValueError(
            f"the archive lacks val images listed in val_annotations.txt: {missing[:3]}"
        )
    return members


def words_lines(words: str, wnids: list[str]) -> list[str]:
    """The lines of ``words.txt`` (``wnid<TAB>names``) for `wnids`, in their order."""
    by_wnid = {line.split("\t", 1)[0]: line for line in words.splitlines() if "\t" in line}
    missing = [wnid for wnid in wnids if wnid not in by_wnid]
    if missing:
        raise ValueError(f"words.txt has no line for {', '.join(missing[:5])}")
    return [by_wnid[wnid] for wnid in wnids]


def hierarchy_row(wnid: str, class_idx: int, wordnet_lookup: WordNetLookup) -> list:
    """The ``hierarchy_wordnet30.csv`` row of one class."""
    path, several_hypernyms = wordnet_lookup(wnid)
    if not path or path[-1][0] != wnid:
        raise ValueError(f"the WordNet path of {wnid} must end at {wnid}, got {path}")
    ids, names = [node for node, _ in path], [name for _, name in path]
    return [
        wnid,
        class_idx,
        names[-1],
        len(path),
        int(CHORDATE in ids),
        int(ANIMAL in ids),
        " > ".join(names),
        " > ".join(ids),
        int(several_hypernyms),
    ]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_subset_zip(source: zipfile.ZipFile, members: list[str], path: Path) -> None:
    """Copy `members` of `source` into a new zip at `path`: same names, dates and bytes, stored."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as subset:
        for member in members:
            info = zipfile.ZipInfo(member, date_time=source.getinfo(member).date_time)
            info.external_attr = 0o644 << 16
            subset.writestr(info, source.read(member))


def hypernym_offsets(data_line: str) -> list[int]:
    """The noun hypernym (``@``) offsets on a line of WordNet's ``data.noun``, in line order.

    The line is ``offset lex_filenum ss_type w_cnt (word lex_id)*w_cnt p_cnt (symbol offset pos
    source/target)*p_cnt ... | gloss``, w_cnt in hex (WordNet's wndb(5) format)."""
    fields = data_line.split()
    at = 4 + 2 * int(fields[3], 16)
    pointers = fields[at + 1 : at + 1 + 4 * int(fields[at])]
    return [
        int(pointers[i + 1])
        for i in range(0, len(pointers), 4)
        if pointers[i] == "@" and pointers[i + 2] == "n"
    ]


def nltk_wordnet_lookup() -> WordNetLookup:
    """WordNet 3.0 through NLTK; exits with the install line if NLTK or its corpus is missing."""
    try:
        from nltk.corpus import wordnet

        version = wordnet.get_version()
    except (ImportError, LookupError):
        raise SystemExit(f"this command needs WordNet 3.0 through NLTK: {NLTK_HINT}") from None
    if version != "3.0":
        raise SystemExit(f"NLTK's wordnet corpus is WordNet {version}, not 3.0: {NLTK_HINT}")
    data = wordnet.open("data.noun")

    def line_at(offset: int) -> str:
        data.seek(offset)
        line = data.readline()
        if not line.startswith(f"{offset:08d} "):
            raise ValueError(f"n{offset:08d} is not a noun synset of WordNet 3.0")
        return line

    def lookup(wnid: str) -> tuple[list[tuple[str, str]], bool]:
        offsets, parents = [int(wnid[1:])], hypernym_offsets(line_at(int(wnid[1:])))
        several_hypernyms = len(parents) > 1
        while parents:
            offsets.append(parents[0])
            parents = hypernym_offsets(line_at(parents[0]))
        path = []
        for offset in reversed(offsets):
            name = wordnet.synset_from_pos_and_offset("n", offset).lemmas()[0].name()
            path.append((f"n{offset:08d}", name))
        return path, several_hypernyms

    return lookup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hackrobust.hierarchy.tinyimagenet_source",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("archive", help="tiny-imagenet-200.zip, as downloaded")
    parser.add_argument("out_dir", help="the folder to create, e.g. $HACKROBUST_DATA_DIR/...")
    parser.add_argument("--train-per-class", type=int, default=100)
    args = parser.parse_args(argv)
    if Path(args.out_dir).exists():
        raise SystemExit(f"{args.out_dir} already exists; remove it or choose another OUT_DIR")
    lookup = nltk_wordnet_lookup()
    try:
        out = build_tinyimagenet_source(args.archive, args.out_dir, lookup, args.train_per_class)
    except (FileNotFoundError, FileExistsError, ValueError, zipfile.BadZipFile) as error:
        raise SystemExit(str(error)) from None
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
