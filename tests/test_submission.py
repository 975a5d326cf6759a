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


def test_csv_has_no_header_no_index_one_label_per_line(tmp_path):
    path = write_submission(np.array([0, 2, 2, 0]), tmp_path / "sub" / "s.csv", label_values=[0, 2])
    assert path.read_bytes() == b"0\n2\n2\n0\n"
    assert read_submission(path).tolist() == [0, 2, 2, 0]


def test_never_overwritten_unless_asked(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("old\n")
    with pytest.raises(SubmissionExistsError, match="submission.overwrite=true"):
        write_submission(np.array([1]), path)
    assert path.read_text() == "old\n"
    write_submission(np.array([1]), path, overwrite=True)
    assert path.read_text() == "1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary file left behind


def test_rejects_labels_outside_the_label_values_and_non_integers(tmp_path):
    with pytest.raises(ValueError, match=r"\[3\] are not label values"):
        write_submission(np.array([0, 3]), tmp_path / "s.csv", label_values=[0, 1])
    with pytest.raises(ValueError, match="1-D integer"):
        write_submission(np.array([0.5]), tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_read_names_the_bad_line(tmp_path):
    (tmp_path / "s.csv").write_text("1\n0,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_submission(tmp_path / "s.csv")


def test_predictions_hold_each_heads_labels(tmp_path):
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.6, 0.4]]])
    path = save_predictions(tmp_path / "p.npz", probs, np.array([4, 6]), head=np.int64(1))
    saved = np.load(path)
    assert saved["predicted"].tolist() == [[4, 6], [6, 4]]
    assert saved["probs"].dtype == np.float32 and int(saved["head"]) == 1
    with pytest.raises(SubmissionExistsError):
        save_predictions(path, probs, np.array([4, 6]))
