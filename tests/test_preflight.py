"""Bad input is refused before training, in one line, and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hackrobust.reveal import RevealError
from hackrobust.submission import SubmissionExistsError
from hackrobust.train import train
from hackrobust.utils.errors import UserError
from hackrobust.utils.run_dir import set_aside

from helpers import compose_train, offline_overrides

FAST = ["trainer.max_epochs=1", "logger=none"]


def refused(overrides, tmp_path, error=UserError, match=""):
    """Run `train` and check it stops with `error` before building anything: the dataset is
    never generated, no epoch runs, and no output file appears."""
    cfg = compose_train([*offline_overrides("toy", tmp_path), *FAST, *overrides], tmp_path)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(error, match=match):
        train(cfg)
    written = {p for p in set(tmp_path.rglob("*")) - before if not p.name.startswith(".")}
    assert not written, written


def test_an_unwritable_submission_path_is_refused_before_training(tmp_path):
    refused(["submission.path=/proc/x.csv"], tmp_path, match="cannot be written")
    (tmp_path / "a_file").write_text("x")
    refused([f"submission.path={tmp_path / 'a_file' / 'out.csv'}"], tmp_path, match="is a file")
    refused([f"submission.path={tmp_path}"], tmp_path, match="is a folder")


def test_an_existing_report_or_predictions_file_is_refused_before_training(tmp_path):
    (tmp_path / "out.report.json").write_text("{}")
    refused([f"submission.path={tmp_path / 'out.csv'}"], tmp_path, SubmissionExistsError)
    assert (tmp_path / "out.report.json").read_text() == "{}"
    (tmp_path / "preds.npz").write_text("keep")
    overrides = [f"submission.path={tmp_path / 'b.csv'}", f"submission.predictions_path={tmp_path / 'preds.npz'}"]  # fmt: skip
    refused(overrides, tmp_path, SubmissionExistsError)
    assert (tmp_path / "preds.npz").read_text() == "keep"


def test_a_non_integer_exercise_id_and_missing_credentials_are_refused_before_training(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("HACKROBUST_REVEAL_USERNAME", raising=False)
    monkeypatch.delenv("HACKROBUST_REVEAL_PASSWORD", raising=False)
    api = ["method=divdis", "query=api", "query.url=http://127.0.0.1:9"]
    refused([*api, "query.exercise_id=abc"], tmp_path, match="exercise_id must be an integer")
    cfg = compose_train(
        [*offline_overrides("toy", tmp_path), *FAST, *api, "query.exercise_id=3"], tmp_path
    )
    with pytest.raises(RevealError, match="HACKROBUST_REVEAL_USERNAME"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # no epoch ran


def test_the_command_line_says_a_user_error_in_one_line_and_exits_2(tmp_path):
    env = os.environ | {"HACKROBUST_LOG_DIR": str(tmp_path / "logs")}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "hackrobust.train", "experiment=quickstart",
               "submission.path=/proc/x.csv"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "/proc/x.csv" in errors[0] and "cannot be written" in errors[0]
    full = subprocess.run(
        command, capture_output=True, text=True, env=env | {"HYDRA_FULL_ERROR": "1"}, timeout=300
    )
    assert full.returncode != 0 and "Traceback" in full.stderr


def test_an_unreachable_reveal_server_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_REVEAL_USERNAME", "team")
    monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "secret")
    monkeypatch.setenv("HACKROBUST_STATE_DIR", str(tmp_path / "state"))
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = [
        "method=divdis",
        "query=api",
        f"query.url=http://127.0.0.1:{port}",
        "query.exercise_id=3",
    ]
    cfg = compose_train([*offline_overrides("toy", tmp_path), *FAST, *api], tmp_path)
    with pytest.raises(RevealError, match="does not answer"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # no epoch ran
    assert not list((tmp_path / "state").rglob("*.json"))  # nothing spent, no ledger written


def test_a_used_run_folder_is_refused_before_hydra_writes_there(tmp_path):
    used = tmp_path / "run"
    (used / ".hydra").mkdir(parents=True)
    (used / ".hydra" / "config.yaml").write_text("the earlier run's config\n")
    env = os.environ | {"HACKROBUST_LOG_DIR": str(tmp_path / "logs")}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "hackrobust.train", "experiment=quickstart",
               f"hydra.run.dir={used}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={used} already holds an earlier run; give a new folder "
        "(the default is a fresh timestamped one under logs/)"
    ]
    assert sorted(p.name for p in used.rglob("*")) == [".hydra", "config.yaml"]
    assert (used / ".hydra" / "config.yaml").read_text() == "the earlier run's config\n"


def test_a_study_sets_an_unfinished_run_folder_aside_and_keeps_it(tmp_path):
    unfinished = tmp_path / "mnist_cc-divdis-0"
    unfinished.mkdir()
    (unfinished / "train.log").write_text("stopped")
    assert set_aside(unfinished) == unfinished and not unfinished.exists()
    unfinished.mkdir()
    (unfinished / "train.log").write_text("stopped again")
    set_aside(unfinished)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["mnist_cc-divdis-0.unfinished-1", "mnist_cc-divdis-0.unfinished-2"]
    assert (tmp_path / kept[1] / "train.log").read_text() == "stopped again"
    empty = tmp_path / "new"
    empty.mkdir()
    assert set_aside(empty).exists()  # an empty folder is no earlier run
