"""The iNat2021 layout: taxonomy parsing and its bad inputs, the dataset, the challenge transforms,
the synthetic tree and the Tiny-ImageNet builder, all on tiny images written here."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from hackrobust.hierarchy.dataset import (
    CHALLENGE_MEAN,
    HierarchicalDataset,
    challenge_transforms,
)
from hackrobust.hierarchy.synthetic import synthetic_species, write_synthetic_tree
from hackrobust.hierarchy.taxonomy import Taxonomy, TaxonomyError
from hackrobust.hierarchy.tinyimagenet import build_tinyimagenet_tree, main, species_levels


def write_image(path, size=(4, 4), color=(10, 200, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def species_dir(root, name, images=("a.png",)):
    folder = root / name
    folder.mkdir(parents=True)
    for image in images:
        write_image(folder / image)
    return folder


# Folder ids deliberately disagree with the class order; genus "Ficus" sits under two families.
HAND_MADE = [
    "00000_Plantae_Tracheophyta_Magnoliopsida_Rosales_Moraceae_Ficus_carica",
    "00001_Animalia_Chordata_Mammalia_Carnivora_Canidae_Canis_lupus",
    "00002_Animalia_Arthropoda_Insecta_Lepidoptera_Nymphalidae_Danaus_plexippus",
    "00003_Fungi_Basidiomycota_Agaricomycetes_Agaricales_Amanitaceae_Amanita_muscaria",
    "00004_Animalia_Chordata_Mammalia_Carnivora_Canidae_Canis_familiaris",
    "00005_Plantae_Tracheophyta_Magnoliopsida_Rosales_Fakeaceae_Ficus_carica",
]


@pytest.fixture
def hand_made(tmp_path):
    for i, name in enumerate(HAND_MADE):
        species_dir(tmp_path, name, [f"{j}.png" for j in range(i + 1)])
    return tmp_path


# --- taxonomy -----------------------------------------------------------------------------------


def test_class_order_is_sorted_root_to_node_names(hand_made):
    taxonomy = Taxonomy.from_folder(hand_made)
    assert taxonomy.class_names(1) == ["Animalia", "Fungi", "Plantae"]
    assert taxonomy.class_names(2) == [
        "Animalia_Arthropoda",
        "Animalia_Chordata",
        "Fungi_Basidiomycota",
        "Plantae_Tracheophyta",
    ]
    # Ficus under two families: two genera and two species; both Canis species share a genus
    assert taxonomy.num_classes(6) == 5 and taxonomy.num_classes(7) == 6
    assert taxonomy.class_names(7, sep="/")[-1] == (
        "Plantae/Tracheophyta/Magnoliopsida/Rosales/Moraceae/Ficus/carica"
    )


def test_labels_groups_and_counts(hand_made):
    taxonomy = Taxonomy.from_folder(hand_made)
    n = sum(range(1, len(HAND_MADE) + 1))
    assert len(taxonomy) == n and taxonomy.nodes.shape == (n, 7)
    assert taxonomy.nodes.dtype == np.int64 and taxonomy.paths.dtype.kind == "S"
    level2 = dict(zip(taxonomy.class_names(2), range(4), strict=True))
    for i in range(n):
        folder = taxonomy.path(i).parent.name
        assert taxonomy.path(i).is_file()
        assert taxonomy.labels(2)[i] == level2["_".join(folder.split("_")[1:3])]
    # images per folder: 1..6; level-2 counts add the folders of each phylum
    assert taxonomy.counts(2).tolist() == [3, 2 + 5, 4, 1 + 6]
    assert taxonomy.counts(7).sum() == n and sorted(taxonomy.counts(7)) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(taxonomy.groups(7), taxonomy.labels(7))
    assert taxonomy.ancestors(7, 2)[taxonomy.labels(7)].tolist() == taxonomy.labels(2).tolist()
    with pytest.raises(ValueError, match="read-only"):
        taxonomy.nodes[0, 0] = 1
    for level in (0, 8):
        with pytest.raises(ValueError, match="level must be 1"):
            taxonomy.labels(level)


def test_synthetic_tree_parses(tmp_path):
    root = write_synthetic_tree(tmp_path / "train", num_species=12, seed=3)
    taxonomy = Taxonomy.from_folder(root, verify=True)
    assert taxonomy.num_classes(1) == 2 and taxonomy.num_classes(2) == 4
    assert taxonomy.num_classes(7) == 12 and taxonomy.skipped == ()
    counts = taxonomy.counts(7)
    assert counts.max() == 12 and counts.min() == 1  # long-tailed
    again = write_synthetic_tree(tmp_path / "again", num_species=12, seed=3)
    np.testing.assert_array_equal(Taxonomy.from_folder(again).nodes, taxonomy.nodes)
    assert len(set(synthetic_species(12, seed=3))) == 12


# --- bad inputs ---------------------------------------------------------------------------------

GOOD = "00010_Animalia_Chordata_Aves_Passeriformes_Corvidae_Corvus_corax"


def bad_case(root, case):
    """Write one good species and one bad entry; return the bad path's name to look for."""
    species_dir(root, GOOD)
    if case == "seven_parts":
        return species_dir(root, "00011_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica").name
    if case == "extra_underscore":
        return species_dir(root, GOOD.replace("00010", "00012").replace("Corvus", "Cor_vus")).name
    if case == "no_id":
        return species_dir(root, GOOD.replace("00010", "abcde")).name
    if case == "empty":
        return species_dir(root, GOOD.replace("00010", "00013"), images=()).name
    if case == "not_an_image":
        (root / GOOD / "notes.txt").write_text("hello")
        return "notes.txt"
    if case == "corrupt":
        (root / GOOD / "broken.jpg").write_bytes(b"not a jpeg at all")
        return "broken.jpg"
    if case == "subfolder":
        (root / GOOD / "nested").mkdir()
        return "nested"
    raise AssertionError(case)


BAD_CASES = [
    ("seven_parts", "7 '_'-separated parts"),
    ("extra_underscore", "9 '_'-separated parts"),
    ("no_id", "numeric id"),
    ("empty", "no usable image"),
    ("not_an_image", "not an image extension"),
    ("corrupt", "unreadable image"),
    ("subfolder", "not a file"),
]


@pytest.mark.parametrize("case, reason", BAD_CASES)
def test_bad_input_raises_naming_it(tmp_path, case, reason):
    bad = bad_case(tmp_path, case)
    with pytest.raises(TaxonomyError, match=reason) as error:
        Taxonomy.from_folder(tmp_path, verify=True)
    assert bad in str(error.value) and "on_error='skip'" in str(error.value)


@pytest.mark.parametrize("case, reason", BAD_CASES)
def test_bad_input_is_skipped_and_logged(tmp_path, caplog, case, reason):
    bad = bad_case(tmp_path, case)
    with caplog.at_level(logging.WARNING, logger="hackrobust.hierarchy.taxonomy"):
        taxonomy = Taxonomy.from_folder(tmp_path, on_error="skip", verify=True)
    assert len(taxonomy) == 1 and taxonomy.path(0) == tmp_path / GOOD / "a.png"
    assert taxonomy.class_names(7) == ["_".join(GOOD.split("_")[1:])]
    [(path, why)] = taxonomy.skipped
    assert path.endswith(bad) and reason in why
    assert bad in caplog.text


def test_corrupt_image_passes_without_verify(tmp_path):
    bad_case(tmp_path, "corrupt")
    assert len(Taxonomy.from_folder(tmp_path)) == 2  # the cheap check is the extension only


def test_hidden_files_and_stray_files_are_ignored(tmp_path):
    species_dir(tmp_path, GOOD)
    (tmp_path / GOOD / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "README.txt").write_text("a note")
    assert len(Taxonomy.from_folder(tmp_path)) == 1


def test_nothing_usable_raises_even_when_skipping(tmp_path):
    species_dir(tmp_path, "not_a_species")
    with pytest.raises(TaxonomyError, match="no usable species folder"):
        Taxonomy.from_folder(tmp_path, on_error="skip")
    with pytest.raises(TaxonomyError, match="not a directory"):
        Taxonomy.from_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="on_error"):
        Taxonomy.from_folder(tmp_path, on_error="ignore")


# --- dataset and transforms ---------------------------------------------------------------------


def test_dataset_items_and_batches(hand_made):
    taxonomy = Taxonomy.from_folder(hand_made)
    dataset = HierarchicalDataset(
        taxonomy, target_level=2, group_level=7, transform=challenge_transforms(False, size=16)
    )
    assert len(dataset) == len(taxonomy)
    assert (dataset.num_classes, dataset.num_groups) == (4, 6)
    item = dataset[5]
    assert set(item) == {"idx", "x", "y", "group"}
    assert item["idx"] == 5 and item["x"].shape == (3, 16, 16) and item["x"].dtype == torch.float32
    assert item["y"] == taxonomy.labels(2)[5] and item["group"] == taxonomy.groups(7)[5]
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["x"].shape == (4, 3, 16, 16) and batch["idx"].tolist() == [0, 1, 2, 3]
    assert HierarchicalDataset(taxonomy, target_level=1)[0]["y"] == taxonomy.labels(1)[0]


def test_dataset_names_an_unreadable_image(tmp_path):
    bad_case(tmp_path, "corrupt")
    dataset = HierarchicalDataset(Taxonomy.from_folder(tmp_path))
    with pytest.raises(OSError, match="broken.jpg.*verify=True"):
        dataset[1]


def test_challenge_transforms_shapes_and_normalisation():
    image = Image.new("RGB", (10, 6), tuple(round(m * 255) for m in CHALLENGE_MEAN))
    train = challenge_transforms(train=True)(image)
    assert train.shape == (3, 224, 224)  # Resize(224) on the short side, then the crop
    evaluate = challenge_transforms(train=False)
    x = evaluate(image)
    assert x.shape == (3, 224, 224) and torch.equal(x, evaluate(image))
    assert x.abs().max() < 0.01  # the mean colour normalises to zero
    small = challenge_transforms(True, size=32, padding=0, mean=(0, 0, 0), std=(1, 1, 1))(image)
    assert small.shape == (3, 32, 32) and small.min() >= 0 and small.max() <= 1


# --- Tiny-ImageNet builder ----------------------------------------------------------------------

FAKE_CLASSES = {  # wnid: WordNet root-to-leaf names, depths 5, 9 and 12
    "n001": "entity > physical_entity > object > whole > sea_wall",
    "n002": (
        "entity > physical_entity > object > whole > living_thing > organism > animal > "
        "chordate > king_penguin"
    ),
    "n003": (
        "entity > physical_entity > object > whole > living_thing > organism > animal > "
        "chordate > vertebrate > mammal > placental > Egyptian_cat"
    ),
    "n004": "entity > physical_entity > object > whole > artifact > covering > Jack-o'-lantern",
}


def jpeg_bytes(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_fake_source(source, n_train=6, n_val=3):
    source.mkdir()
    rows = []
    with zipfile.ZipFile(source / "tinyimagenet200_subset.zip", "w") as archive:
        for k, wnid in enumerate(FAKE_CLASSES):
            members = [
                (f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{j}.JPEG", "train")
                for j in range(n_train)
            ] + [
                (f"tiny-imagenet-200/val/images/val_{k * n_val + j}.JPEG", "val")
                for j in range(n_val)
            ]
            for member, split in members:
                archive.writestr(member, jpeg_bytes((40 * k, 0, 0)))
                rows.append({"path": member, "split": split, "wnid": wnid, "class_idx": k})
    with open(source / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "split", "wnid", "class_idx"])
        writer.writeheader()
        writer.writerows(rows)
    with open(source / "hierarchy_wordnet30.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["wnid", "class_idx", "name", "depth", "is_animal", "path_names_root_to_leaf"]
        )
        for k, (wnid, path) in enumerate(FAKE_CLASSES.items()):
            names = path.split(" > ")
            writer.writerow([wnid, k, names[-1], len(names), int("animal" in names), path])
    return source


def test_species_levels_cut_and_pad():
    deep = FAKE_CLASSES["n003"].split(" > ")
    assert species_levels(deep) == (
        "living-thing", "organism", "animal", "chordate", "vertebrate", "mammal", "Egyptian-cat"
    )  # fmt: skip
    short = FAKE_CLASSES["n001"].split(" > ")
    assert species_levels(short) == ("whole",) * 6 + ("sea-wall",)
    assert len(species_levels(["entity", "thing"])) == 7


def test_tinyimagenet_builder_on_a_fake_source(tmp_path):
    source = write_fake_source(tmp_path / "source")
    out = build_tinyimagenet_tree(
        source, tmp_path / "out", seed=1, max_train=6, min_train=2, test_per_species=2
    )
    train = Taxonomy.from_folder(out / "train", verify=True)
    test = Taxonomy.from_folder(out / "test", verify=True)
    assert train.num_classes(7) == test.num_classes(7) == 4
    assert sorted(train.counts(7)) == [2, 3, 4, 6]  # geometric from 6 down to 2
    assert test.counts(7).tolist() == [2, 2, 2, 2]  # balanced
    assert train.class_names(7) == test.class_names(7)
    folders = sorted(p.name for p in (out / "train").iterdir())
    assert [f.split("_")[0] for f in folders] == ["00000", "00001", "00002", "00003"]
    assert all(len(f.split("_")) == 8 for f in folders)
    assert any(name.endswith("Jack-o'-lantern") for name in train.class_names(7))
    assert all(p.suffix == ".jpg" for p in (out / "test").rglob("*") if p.is_file())
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["seed"] == 1 and len(metadata["species"]) == 4

    again = build_tinyimagenet_tree(
        source, tmp_path / "again", seed=1, max_train=6, min_train=2, test_per_species=2
    )
    assert sorted(p.relative_to(again) for p in again.rglob("*.jpg")) == sorted(
        p.relative_to(out) for p in out.rglob("*.jpg")
    )
    with pytest.raises(FileExistsError, match="already exists"):
        build_tinyimagenet_tree(source, out)
    with pytest.raises(FileNotFoundError, match="index.csv"):
        build_tinyimagenet_tree(tmp_path / "out", tmp_path / "elsewhere")


def test_tinyimagenet_cli(tmp_path, capsys):
    source = write_fake_source(tmp_path / "source")
    main(
        [
            str(source),
            str(tmp_path / "out"),
            "--seed",
            "2",
            "--max-train",
            "4",
            "--min-train",
            "2",
            "--only-animals",
        ]
    )
    assert "wrote" in capsys.readouterr().out
    taxonomy = Taxonomy.from_folder(tmp_path / "out" / "train")
    assert taxonomy.num_classes(7) == 2 and taxonomy.class_names(1) == ["living-thing"]
    assert Taxonomy.from_folder(tmp_path / "out" / "test").counts(7).tolist() == [3, 3]
