"""The builder of the ``tinyimagenet_hier`` source folder, on a tiny fake tiny-imagenet-200.zip
and a fake WordNet: what it writes is what `build_tinyimagenet_tree` reads."""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile

import pytest
from PIL import Image

from hackrobust.hierarchy import tinyimagenet_source
from hackrobust.hierarchy.taxonomy import Taxonomy
from hackrobust.hierarchy.tinyimagenet import build_tinyimagenet_tree
from hackrobust.hierarchy.tinyimagenet_source import (
    HIERARCHY_HEADER,
    NLTK_HINT,
    build_tinyimagenet_source,
    hypernym_offsets,
    main,
)

ROOT = "tiny-imagenet-200"
TOP = [("n00001740", "entity"), ("n00001930", "physical_entity"), ("n00002684", "object")]
TOP += [("n00003553", "whole"), ("n00004258", "living_thing"), ("n00004475", "organism")]
PATHS = {  # fake WordNet paths, root to leaf, and whether the leaf has several hypernyms
    "n02124075": (
        [*TOP, ("n00015388", "animal"), ("n01466257", "chordate"), ("n02124075", "Egyptian_cat")],
        False,
    ),
    "n01443537": (
        [*TOP, ("n00015388", "animal"), ("n01440160", "fish"), ("n01443537", "goldfish")],
        False,
    ),
    "n04067472": (
        [*TOP[:4], ("n00021939", "artifact"), ("n03575240", "instrumentality")]
        + [("n03183080", "device"), ("n04067472", "reel")],
        True,
    ),
}
WNIDS = list(PATHS)  # wnids.txt order, not sorted: class_idx follows it
TRAIN_NUMBERS = [0, 1, 2, 10, 11]  # with a cap of 3, 0 1 2 are kept (by number, not by name)
VAL = {f"val_{k}.JPEG": WNIDS[k % 3] for k in range(6)}
ANNOTATIONS = "".join(f"{file}\t{wnid}\t0\t1\t60\t62\n" for file, wnid in VAL.items())


def jpeg(seed):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 7 % 256, 40, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def fake_lookup(wnid):
    return PATHS[wnid]


def write_fake_archive(path):
    """A tiny-imagenet-200.zip in the official layout; returns its JPEG members' bytes."""
    images = {}
    for k, wnid in enumerate(WNIDS):
        for j in TRAIN_NUMBERS:
            images[f"{ROOT}/train/{wnid}/images/{wnid}_{j}.JPEG"] = jpeg(10 * k + j)
    for k, file in enumerate(VAL):
        images[f"{ROOT}/val/images/{file}"] = jpeg(200 + k)
    words = "n00001740\tentity\n" + "".join(f"{w}\t{PATHS[w][0][-1][1]}\n" for w in WNIDS)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ROOT}/wnids.txt", "".join(f"{w}\n" for w in WNIDS))
        archive.writestr(f"{ROOT}/words.txt", words + "n99999999\textra, line\n")
        archive.writestr(f"{ROOT}/val/val_annotations.txt", ANNOTATIONS)
        archive.writestr(f"{ROOT}/train/{WNIDS[0]}/{WNIDS[0]}_boxes.txt", "x\t0\t0\t1\t1\n")
        archive.writestr(f"{ROOT}/test/images/test_0.JPEG", jpeg(255))
        for member, data in images.items():
            archive.writestr(member, data)
    return images


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def built(tmp_path):
    images = write_fake_archive(tmp_path / "tiny-imagenet-200.zip")
    out = build_tinyimagenet_source(
        tmp_path / "tiny-imagenet-200.zip", tmp_path / "data" / "hier", fake_lookup, 3
    )
    return out, images


def test_the_files_and_their_formats(built):
    out, images = built
    assert sorted(p.name for p in out.iterdir()) == [
        "hierarchy_wordnet30.csv", "index.csv", "tinyimagenet200_subset.zip",
        "val_annotations.txt", "wnids.txt", "words_200.txt",
    ]  # fmt: skip
    index = read_rows(out / "index.csv")
    assert (out / "index.csv").read_bytes().startswith(b"path,split,wnid,class_idx\r\n")
    first = f"{ROOT}/train/n01443537/images/n01443537_0.JPEG"
    assert index[1] == [first, "train", "n01443537", "1"]
    assert [f"{ROOT}/val/images/val_0.JPEG", "val", "n02124075", "0"] in index
    assert [row[0] for row in index[1:]] == sorted(row[0] for row in index[1:])
    train = [row for row in index[1:] if row[1] == "train"]
    assert len(train) == 9  # 3 per class
    assert {row[0].rsplit("_", 1)[1] for row in train} == {"0.JPEG", "1.JPEG", "2.JPEG"}
    assert sum(row[1] == "val" for row in index) == len(VAL)

    hierarchy = read_rows(out / "hierarchy_wordnet30.csv")
    assert hierarchy[0] == HIERARCHY_HEADER
    assert hierarchy[1] == [
        "n02124075", "0", "Egyptian_cat", "9", "1", "1",
        " > ".join(name for _, name in PATHS["n02124075"][0]),
        " > ".join(wnid for wnid, _ in PATHS["n02124075"][0]),
        "0",
    ]  # fmt: skip
    assert hierarchy[2][3:6] == ["9", "0", "1"]  # goldfish: depth, not chordate here, animal
    assert hierarchy[3][3:6] == ["8", "0", "0"] and hierarchy[3][-1] == "1"  # reel
    assert (out / "wnids.txt").read_text().split() == WNIDS
    words = "n02124075\tEgyptian_cat\nn01443537\tgoldfish\nn04067472\treel\n"
    assert (out / "words_200.txt").read_text() == words
    assert (out / "val_annotations.txt").read_text() == ANNOTATIONS

    with zipfile.ZipFile(out / "tinyimagenet200_subset.zip") as subset:
        assert subset.namelist() == [row[0] for row in index[1:]]
        assert all(subset.read(name) == images[name] for name in subset.namelist())
        assert {info.compress_type for info in subset.infolist()} == {zipfile.ZIP_STORED}


def test_the_tree_builder_reads_it(built, tmp_path):
    out, _ = built
    tree = build_tinyimagenet_tree(
        out, tmp_path / "tree", max_train=3, min_train=3, test_per_species=2
    )
    train = Taxonomy.from_folder(tree / "train", verify=True)
    test = Taxonomy.from_folder(tree / "test", verify=True)
    assert train.counts(7).tolist() == [3, 3, 3] and test.counts(7).tolist() == [2, 2, 2]
    assert sorted(name.rsplit("_", 1)[1] for name in train.class_names(7)) == [
        "Egyptian-cat", "goldfish", "reel",
    ]  # fmt: skip
    species = json.loads((tree / "metadata.json").read_text())["species"]
    assert sorted(record["wnid"] for record in species) == sorted(WNIDS)
    cat = next(r["folder"] for r in species if r["wnid"] == "n02124075")
    assert cat.endswith("living-thing_organism_animal_chordate_chordate_chordate_Egyptian-cat")


def test_an_existing_out_dir_is_refused(built, tmp_path, capsys):
    out, _ = built
    with pytest.raises(FileExistsError, match="already exists"):
        build_tinyimagenet_source(tmp_path / "tiny-imagenet-200.zip", out, fake_lookup)
    with pytest.raises(SystemExit, match="already exists"):
        main([str(tmp_path / "tiny-imagenet-200.zip"), str(out)])


def test_a_failure_leaves_nothing(tmp_path, monkeypatch):
    write_fake_archive(tmp_path / "tiny.zip")

    def broken(wnid):
        raise KeyError(wnid)

    with pytest.raises(KeyError):
        build_tinyimagenet_source(tmp_path / "tiny.zip", tmp_path / "data" / "hier", broken)
    assert not (tmp_path / "data" / "hier").exists()

    def full_disk(*args):
        raise OSError("no space left")

    monkeypatch.setattr(tinyimagenet_source, "write_csv", full_disk)  # after the zip is written
    with pytest.raises(OSError, match="no space"):
        build_tinyimagenet_source(tmp_path / "tiny.zip", tmp_path / "data" / "hier", fake_lookup)
    assert list((tmp_path / "data").iterdir()) == []


def test_missing_nltk_says_how_to_install_it(tmp_path, monkeypatch):
    write_fake_archive(tmp_path / "tiny.zip")
    monkeypatch.setitem(sys.modules, "nltk", None)
    monkeypatch.setitem(sys.modules, "nltk.corpus", None)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "tiny.zip"), str(tmp_path / "hier")])
    assert NLTK_HINT in str(exit_info.value) and "\n" not in str(exit_info.value)
    assert not (tmp_path / "hier").exists()


def test_hypernyms_keep_the_order_of_the_data_line():
    # edible_fruit.n.01 in WordNet 3.0's data.noun, its pointers cut to three
    line = (
        "07705931 13 n 01 edible_fruit 0 003 @ 07705711 n 0000 @ 13134947 n 0000 "
        "~ 07738105 n 0000 | edible reproductive body of a seed plant"
    )
    assert hypernym_offsets(line) == [7705711, 13134947]
    two_words = "02124075 05 n 02 Egyptian_cat 0 cat 0 001 @ 02121808 n 0000 | a cat"
    assert hypernym_offsets(two_words) == [2121808]
