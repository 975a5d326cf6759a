"""The HappyFaces builder on a fake copy of its archives (same member names, tiny JPEGs)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import numpy as np
import pytest

from hackrobust.data.generators import make_happyfaces
from hackrobust.data.generators.happyfaces import ARCHIVES, TAGS, tag_features
from hackrobust.data.layout import save_hackathon_dir
from hackrobust.data.loader import load_hackathon_dir
from hackrobust.data.sources import SourceUnavailableError
from hackrobust.train import train

from helpers import compose_train

PER_TAG = {"labeled": 8, "validation": 10}  # the real archives: 100 and 50
SIZES = {"n_labeled": 16, "n_unlabeled": 8, "n_target": 16}  # target: 4 per tag, 6 per tag left
SIZE = 16


def _jpeg(tag: str, rng: np.random.Generator) -> bytes:
    """A 20x20 JPEG whose red channel says the face (bright: happy) and blue the writing."""
    from PIL import Image

    face, writing = tag_features(tag)
    pixels = rng.integers(0, 60, size=(20, 20, 3)).astype(np.uint8)
    pixels[..., 0] += 180 * face
    pixels[..., 2] += 180 * writing
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    if payload is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


def write_fake_happyfaces(data_dir, seed: int = 0, per_tag: dict[str, int] = PER_TAG):
    """`<data_dir>/happyfaces/{labeled,validation}_sets.tar.gz` named as the real members are:
    `labeled_sets/FHWH/<name>_FHWH.jpg.gz` (each gzipped) and `validation_sets/FHWS/<name>.jpg`."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "happyfaces"
    folder.mkdir(parents=True)
    for kind, tags in (("labeled", ("FHWH", "FSWS")), ("validation", TAGS)):
        with tarfile.open(folder / ARCHIVES[kind], "w:gz") as tar:
            _add(tar, f"{kind}_sets/")
            for tag in tags:
                _add(tar, f"{kind}_sets/{tag}/")
                for i in range(per_tag[kind]):
                    payload = _jpeg(tag, rng)
                    name = f"{kind}_sets/{tag}/Person_{kind[0]}{i:03d}_0001_{tag}.jpg"
                    if kind == "labeled":
                        payload, name = gzip.compress(payload), name + ".gz"
                    _add(tar, name, payload)
    return data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fake_happyfaces(tmp_path_factory.mktemp("data"))


def build(data_dir, **overrides):
    return make_happyfaces(**{"data_dir": str(data_dir), "image_size": SIZE, **SIZES, **overrides})


def _tags(features: np.ndarray) -> list[str]:
    return [f"F{'SH'[f]}W{'SH'[w]}" for f, w in features]


def test_layout_shapes_and_labels(data_dir, tmp_path):
    data = build(data_dir, seed=0)
    for x, n in ((data.x_labeled, 16), (data.x_unlabeled, 8), (data.x_target, 16)):
        assert x.shape == (n, 3, SIZE, SIZE) and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 1
    meta = data.metadata
    assert meta["features"] == ["face", "writing"] and meta["true_feature"] == "face"
    assert meta["default_score"] == 0.5 and json.loads(json.dumps(meta)) == meta
    # The label is the face; the labeled set is only FHWH and FSWS, half each.
    assert data.y_labeled.dtype == np.int64 and np.bincount(data.y_labeled).tolist() == [8, 8]
    assert meta["tag_counts"]["labeled"] == {"FHWH": 8, "FHWS": 0, "FSWH": 0, "FSWS": 8}
    np.testing.assert_array_equal(data.y_target, data.features_target[:, 0])
    assert meta["tag_counts"]["target"] == dict.fromkeys(TAGS, 4)
    # Rows and labels stay aligned: red is bright on happy faces, blue under happy writing.
    for x, features in ((data.x_target, data.features_target),
                        (data.x_unlabeled, data.features_unlabeled)):  # fmt: skip
        np.testing.assert_array_equal(x[:, 0].mean(axis=(1, 2)) > 0.45, features[:, 0] == 1)
        np.testing.assert_array_equal(x[:, 2].mean(axis=(1, 2)) > 0.45, features[:, 1] == 1)
    np.testing.assert_array_equal(data.x_labeled[:, 0].mean(axis=(1, 2)) > 0.45, data.y_labeled)
    # The file names say the same as the features; the folder loads back as written.
    assert [name[-4:] for name in meta["files"]["target"]] == _tags(data.features_target)
    loaded = load_hackathon_dir(save_hackathon_dir(data, tmp_path / "happyfaces"))
    np.testing.assert_array_equal(loaded.x_unlabeled, data.x_unlabeled)
    assert loaded.metadata == meta


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_mix_rate_and_disjoint_splits(data_dir, rate):
    data = build(data_dir, seed=1, unlabeled_mix_rate=rate)
    counts = data.metadata["tag_counts"]["unlabeled"]
    mixed = round(rate * 8)
    assert counts["FHWS"] + counts["FSWH"] == mixed
    assert abs(counts["FHWS"] - counts["FSWH"]) <= 1 and abs(counts["FHWH"] - counts["FSWS"]) <= 1
    assert data.metadata["unlabeled_mix_rate_actual"] == mixed / 8
    assert (data.features_unlabeled[:, 0] != data.features_unlabeled[:, 1]).sum() == mixed
    files = data.metadata["files"]
    assert not set(files["unlabeled"]) & set(files["target"])
    assert len(set(files["unlabeled"] + files["target"])) == 24
    # The target does not depend on the unlabeled mix rate: a curve is scored on the same rows.
    reference = build(data_dir, seed=1, unlabeled_mix_rate=0.5)
    assert files["target"] == reference.metadata["files"]["target"]
    np.testing.assert_array_equal(data.x_target, reference.x_target)


def test_same_seed_same_dataset_other_seed_other_split(data_dir):
    a, b, c = build(data_dir, seed=5), build(data_dir, seed=5), build(data_dir, seed=6)
    for name in ("x_labeled", "x_unlabeled", "x_target", "y_target", "features_unlabeled"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.metadata == b.metadata
    assert set(a.metadata["files"]["target"]) != set(c.metadata["files"]["target"])
    assert build(data_dir, seed=5, image_size=24).x_target.shape[-1] == 24


def test_missing_archive_and_impossible_sizes_say_what_to_do(data_dir, tmp_path):
    with pytest.raises(SourceUnavailableError, match="labeled_sets.tar.gz and validation"):
        build(tmp_path / "nothing-here", seed=0)
    partial = tmp_path / "partial" / "happyfaces"
    partial.mkdir(parents=True)
    (partial / ARCHIVES["labeled"]).write_bytes(
        (data_dir / "happyfaces" / ARCHIVES["labeled"]).read_bytes()
    )
    with pytest.raises(
        FileNotFoundError, match="validation_sets.tar.gz not found.*HACKROBUST_DATA_DIR"
    ):
        build(partial.parent, seed=0)
    # 4 target faces per tag leave 6: a 14-row unlabeled set cannot be all decorrelated.
    with pytest.raises(ValueError, match="unlabeled set needs 7 FHWS faces"):
        build(data_dir, seed=0, n_unlabeled=14, unlabeled_mix_rate=1.0)
    with pytest.raises(ValueError, match="true_feature"):
        build(data_dir, seed=0, true_feature="hat")


def test_command_line_writes_the_default_sizes(tmp_path):
    """With the real archives' counts (100 and 50 per tag), the defaults use every face."""
    from hackrobust.data.generators.__main__ import main

    full = write_fake_happyfaces(tmp_path / "data", per_tag={"labeled": 100, "validation": 50})
    main(["happyfaces", str(tmp_path / "hf"), "--seed", "2", "--data-dir", str(full)])
    loaded = load_hackathon_dir(tmp_path / "hf")
    assert loaded.metadata["name"] == "happyfaces" and loaded.metadata["seed"] == 2
    assert loaded.x_labeled.shape == (200, 3, 64, 64) and loaded.has_answer_key
    assert (len(loaded.x_unlabeled), len(loaded.x_target)) == (50, 100)
    counts = loaded.metadata["tag_counts"]["unlabeled"]
    assert counts["FHWS"] + counts["FSWH"] == 25 and counts["FHWH"] + counts["FSWS"] == 25


def test_divdis_trains_and_submits_end_to_end(data_dir, tmp_path):
    overrides = [
        "method=divdis", "dataset=happyfaces", "query=oracle", "seed=0",
        f"paths.data_dir={data_dir}", f"dataset.generator.image_size={SIZE}",
        *(f"dataset.generator.{key}={value}" for key, value in SIZES.items()),
        "trainer.max_epochs=2", "model.cnn_width=8", "~callbacks.attribution_maps",
    ]  # fmt: skip
    metrics, objects = train(compose_train(overrides, tmp_path))
    assert objects["datamodule"].input_shape == (3, SIZE, SIZE)
    assert objects["datamodule"].default_score == 0.5
    assert 0 <= metrics["target/final_acc"] <= 1
    report = json.loads((tmp_path / "submission.report.json").read_text())
    assert 1 <= report["labels_revealed"] <= 5 and report["default_score"] == 0.5
    assert len((tmp_path / "submission.csv").read_text().split()) == SIZES["n_target"]
