"""The submission CSV and the predictions file."""

from __future__ import annotations

import numpy as np
import pytest

from hackrobust.submission import (
    SubmissionExistsError,
    read_submission,
    save_predictions,
    write_submission,
)


def test_csv_has_no_header_no_index_one_integer_per_line(tmp_path):
    labels = np.array([0, 2, 2, 0, 2])
    path = write_submission(labels, tmp_path / "new" / "dir" / "s.csv", label_values=[0, 2])
    assert path == tmp_path / "new" / "dir" / "s.csv"
    content = path.read_bytes()
    assert content == b"0\n2\n2\n0\n2\n"
    assert b"\r" not in content and content.endswith(b"\n")
    assert len(content.decode().splitlines()) == len(labels)
    assert read_submission(path).tolist() == [0, 2, 2, 0, 2]


def test_label_values_are_written_as_they_are(tmp_path):
    labels = np.array([4, 6, 5, -1], dtype=np.int32)
    path = write_submission(labels, tmp_path / "s.csv", label_values=np.array([-1, 4, 5, 6]))
    assert path.read_text() == "4\n6\n5\n-1\n"
    roundtrip = read_submission(path)
    assert roundtrip.dtype == np.int64 and roundtrip.tolist() == labels.tolist()


def test_same_input_gives_the_same_bytes(tmp_path):
    labels = np.random.default_rng(0).choice([0, 2], size=500)
    first = write_submission(labels, tmp_path / "a.csv").read_bytes()
    second = write_submission(labels.copy(), tmp_path / "b.csv").read_bytes()
    third = write_submission(labels, tmp_path / "a.csv", overwrite=True).read_bytes()
    assert first == second == third


def test_an_existing_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("old\n")
    with pytest.raises(SubmissionExistsError) as error:
        write_submission(np.array([1]), path)
    assert isinstance(error.value, FileExistsError)
    assert str(path) in str(error.value)
    assert "submission.overwrite=true" in str(error.value) and "submission.path" in str(error.value)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary file left behind


def test_overwrite_replaces_it(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("old\n")
    write_submission(np.array([1, 0]), path, overwrite=True)
    assert path.read_text() == "1\n0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


@pytest.mark.parametrize(
    "labels, label_values, message",
    [
        (np.array([0, 3]), [0, 1], r"\[3\] are not label values \[0, 1\]"),
        (np.array([0, 1]), [0, 2], r"\[1\] are not label values \[0, 2\]"),
        (np.array([0.5]), None, "1-D integer"),
        (np.array([0.0, 1.0]), None, "1-D integer"),
        (np.array([[0, 1]]), None, "1-D integer"),
        (np.array(["0"]), None, "1-D integer"),
    ],
    ids=["unknown value", "class index instead of value", "float", "integral float", "2-D", "str"],
)
def test_invalid_labels_are_refused(tmp_path, labels, label_values, message):
    with pytest.raises(ValueError, match=message):
        write_submission(labels, tmp_path / "s.csv", label_values=label_values)
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize(
    "text, line",
    [
        ("1\n0,1\n", 2),
        ("label\n1\n", 1),
        ("1\n\n0\n", 2),
        ("1\n0.5\n", 2),
        ("1\n2\n1_0\n", 3),
    ],
    ids=["two columns", "header", "blank line", "float", "underscore"],
)
def test_read_names_the_bad_line(tmp_path, text, line):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(ValueError, match=f"s.csv, line {line}: .* is not one integer"):
        read_submission(tmp_path / "s.csv")


def test_read_accepts_crlf_and_surrounding_spaces(tmp_path):
    (tmp_path / "s.csv").write_bytes(b"4\r\n 5 \r\n-6")
    assert read_submission(tmp_path / "s.csv").tolist() == [4, 5, -6]


def test_predictions_hold_probs_label_values_and_each_heads_labels(tmp_path):
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.6, 0.4]], [[0.5, 0.5], [0, 1]]])
    path = save_predictions(tmp_path / "out" / "predictions.npz", probs, [4, 6], head=np.int64(1))
    with np.load(path) as saved:
        assert set(saved.files) == {"probs", "label_values", "predicted", "head"}
        assert saved["probs"].dtype == np.float32 and saved["probs"].shape == (3, 2, 2)
        np.testing.assert_allclose(saved["probs"], probs)
        assert saved["label_values"].tolist() == [4, 6]
        assert saved["predicted"].shape == (3, 2)
        assert saved["predicted"].tolist() == [[4, 6], [6, 4], [4, 6]]
        assert int(saved["head"]) == 1


def test_predictions_are_never_overwritten_unless_asked(tmp_path):
    probs = np.full((2, 1, 2), 0.5)
    path = save_predictions(tmp_path / "p.npz", probs, [0, 1])
    before = path.read_bytes()
    with pytest.raises(SubmissionExistsError, match="submission.overwrite=true"):
        save_predictions(path, np.zeros((5, 1, 2)), [0, 1])
    assert path.read_bytes() == before
    save_predictions(path, np.zeros((5, 1, 2)), [0, 1], overwrite=True)
    with np.load(path) as saved:
        assert saved["probs"].shape == (5, 1, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


@pytest.mark.parametrize(
    "probs, label_values, extra, message",
    [
        (np.zeros((3, 2)), [0, 1], {}, "probs must be"),
        (np.zeros((3, 1, 3)), [0, 1], {}, "probs must be"),
        (np.zeros((3, 1, 2)), [[0, 1]], {}, "label_values must be 1-D"),
        (np.zeros((3, 1, 2)), [0, 1], {"predicted": np.zeros(3)}, "names are taken"),
    ],
    ids=["2-D probs", "classes vs label values", "2-D label values", "name clash"],
)
def test_predictions_refuse_bad_shapes(tmp_path, probs, label_values, extra, message):
    with pytest.raises(ValueError, match=message):
        save_predictions(tmp_path / "p.npz", probs, label_values, **extra)
    assert not (tmp_path / "p.npz").exists()
