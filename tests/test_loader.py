"""Loading a hackathon42 folder: what others write loads; every bad input names file and problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackrobust.data.layout import HackathonData, save_hackathon_dir
from hackrobust.data.loader import DatasetError, load_hackathon_dir


def write_folder(path, *, x_shape=(1, 4, 6), labels=(0, 1), n=(20, 30, 10), **replace):
    """A valid float64 folder; `replace` swaps in any array by file name (None removes it)."""
    rng = np.random.default_rng(0)
    n_labeled, n_unlabeled, n_target = n
    arrays = {
        "X_labeled.npy": rng.random((n_labeled, *x_shape)),
        "y_labeled.npy": np.resize(np.asarray(labels), n_labeled),
        "X_unlabeled.npy": rng.random((n_unlabeled, *x_shape)),
        "X_val.npy": rng.random((n_target, *x_shape)),
    }
    arrays.update(replace)
    path.mkdir()
    for name, array in arrays.items():
        if array is not None:
            np.save(path / name, array)
    return path


def test_float64_images_and_any_label_values(tmp_path):
    data = load_hackathon_dir(write_folder(tmp_path / "d", labels=(4, 5, 6)))
    assert data.x_labeled.dtype == np.float32 and data.y_labeled.dtype == np.int64
    assert data.label_values.tolist() == [4, 5, 6]
    assert data.input_shape == (1, 4, 6) and not data.has_answer_key


def test_vectors_and_single_channel_images(tmp_path):
    assert load_hackathon_dir(write_folder(tmp_path / "v", x_shape=(7,))).input_shape == (7,)
    assert load_hackathon_dir(write_folder(tmp_path / "i", x_shape=(5, 5))).input_shape == (1, 5, 5)


def test_integral_float_and_bool_labels_are_accepted(tmp_path):
    floats = write_folder(tmp_path / "f", **{"y_labeled.npy": np.resize([0.0, 2.0], 20)})
    assert load_hackathon_dir(floats).label_values.tolist() == [0, 2]
    bools = write_folder(tmp_path / "b", **{"y_labeled.npy": np.resize([True, False], 20)})
    assert load_hackathon_dir(bools).label_values.tolist() == [0, 1]


def test_answer_key_round_trip(tmp_path):
    data = HackathonData(
        x_labeled=np.zeros((4, 3), np.float32),
        y_labeled=np.array([0, 2, 0, 2]),
        x_unlabeled=np.ones((5, 3), np.float32),
        x_target=np.ones((2, 3), np.float32),
        y_target=np.array([2, 0]),
        features_target=np.array([[2, 0], [0, 0]]),
        metadata={"name": "x", "features": ["a", "b"]},
    )
    loaded = load_hackathon_dir(save_hackathon_dir(data, tmp_path / "d"))
    assert loaded.y_target.tolist() == [2, 0] and loaded.metadata["features"] == ["a", "b"]
    assert loaded.features_target.tolist() == [[2, 0], [0, 0]]


BAD = {
    "missing file": ({"X_unlabeled.npy": None}, "X_unlabeled.npy", "missing"),
    "NaN": ({"X_val.npy": np.full((10, 1, 4, 6), np.nan)}, "X_val.npy", "NaN or inf"),
    "inf": ({"X_labeled.npy": np.full((20, 1, 4, 6), np.inf)}, "X_labeled.npy", "NaN or inf"),
    "lengths": ({"y_labeled.npy": np.resize([0, 1], 19)}, "y_labeled.npy", "19 rows"),
    "dimensions": ({"X_val.npy": np.zeros((10, 1, 1, 4, 6))}, "X_val.npy", "shape"),
    "row shapes": ({"X_val.npy": np.zeros((10, 1, 4, 7))}, "X_val.npy", "per-row shape"),
    "one class": ({"y_labeled.npy": np.ones(20, int)}, "y_labeled.npy", "only one class"),
    "float labels": ({"y_labeled.npy": np.resize([0.5, 1.0], 20)}, "y_labeled.npy", "not integers"),
    "text labels": ({"y_labeled.npy": np.resize(["a", "b"], 20)}, "y_labeled.npy", "integers"),
    "2-D labels": ({"y_labeled.npy": np.zeros((20, 2), int)}, "y_labeled.npy", "one value per row"),
    "empty": ({"X_unlabeled.npy": np.zeros((0, 1, 4, 6))}, "X_unlabeled.npy", "empty"),
    "answer key length": ({"y_val.npy": np.zeros(9, int)}, "y_val.npy", "9 rows"),
    "answer key values": ({"y_val.npy": np.full(10, 3)}, "y_val.npy", "does not have"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_names_the_file_and_the_problem(case, tmp_path):
    replace, file_name, problem = BAD[case]
    folder = write_folder(tmp_path / "d", **replace)
    with pytest.raises(DatasetError) as error:
        load_hackathon_dir(folder)
    assert file_name in str(error.value) and problem in str(error.value)


def test_pickled_git_lfs_and_bad_json(tmp_path):
    folder = write_folder(tmp_path / "p", **{"X_val.npy": np.array([{"a": 1}] * 10, dtype=object)})
    with pytest.raises(DatasetError, match="X_val.npy.*pickled"):
        load_hackathon_dir(folder)

    folder = write_folder(tmp_path / "l")
    (folder / "X_labeled.npy").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\n"
    )
    with pytest.raises(DatasetError, match="X_labeled.npy is a git-LFS pointer"):
        load_hackathon_dir(folder)

    folder = write_folder(tmp_path / "j")
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="metadata.json is not valid JSON"):
        load_hackathon_dir(folder)
    (folder / "metadata.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DatasetError, match="JSON object"):
        load_hackathon_dir(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(DatasetError, match="is not a directory"):
        load_hackathon_dir(tmp_path / "absent")
