"""The project's own server over real HTTP on 127.0.0.1: protocol, budget, restarts, scoring."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import uvicorn

from hackrobust.leaderboard import leaderboard, submit_csv
from hackrobust.reveal import ApiRevealer, RevealError
from hackrobust.server.app import create_app
from hackrobust.server.store import Store
from hackrobust.submission import write_submission

LABELS = np.array([4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5])


class Running:
    """uvicorn serving `create_app(db)` on a free local port, in a thread."""

    def __init__(self, db, budget=5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            create_app(db, budget), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def db(tmp_path, monkeypatch):
    folder = tmp_path / "exercise"
    folder.mkdir()
    np.save(folder / "y_val.npy", LABELS)
    (folder / "metadata.json").write_text('{"name": "toy", "default_score": 0.8}')
    store = Store(tmp_path / "server.sqlite")
    store.add_team("team", "secret")
    store.add_team("other", "pw")
    store.add_exercise(3, folder)
    monkeypatch.setenv("HACKROBUST_REVEAL_USERNAME", "team")
    monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "secret")
    monkeypatch.setenv("HACKROBUST_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "server.sqlite"


def post_reveal(url, datum, username="team", password="secret", exercise=3):
    form = {"username": username, "password": password, "exercise_id": exercise, "datum_id": datum}
    return requests.post(f"{url}/reveal/", data=form, timeout=10)


def test_reveal_protocol(db):
    with Running(db) as server:
        first = post_reveal(server.url, 2).json()
        assert first == {"exercise_id": 3, "datum_id": 2, "label": 6, "previously revealed": []}
        assert post_reveal(server.url, 7).json()["previously revealed"] == [2]
        assert post_reveal(server.url, 2, password="nope").status_code == 401
        assert post_reveal(server.url, 99).status_code == 404
        assert post_reveal(server.url, 1, exercise=8).status_code == 404
        assert ApiRevealer(server.url, exercise_id=3).reveal(5) == 6


def test_budget_holds_under_concurrent_requests(db):
    with Running(db, budget=5) as server, ThreadPoolExecutor(14) as pool:
        answers = list(pool.map(lambda d: post_reveal(server.url, d).status_code, range(14)))
    assert answers.count(200) == 5 and answers.count(403) == 9
    with Running(db) as server:  # a restart keeps the spent budget
        assert post_reveal(server.url, 13).status_code in (200, 403)
        assert len(Store(db).leaderboard()["teams"]) == 2
        spent = [d for d in range(14) if post_reveal(server.url, d).status_code == 200]
        assert len(spent) == 5


def test_submission_is_validated_scored_and_once_only(db, tmp_path):
    wrong_length = write_submission(LABELS[:3], tmp_path / "short.csv")
    wrong_values = write_submission(np.full(len(LABELS), 9), tmp_path / "nine.csv")
    answer = LABELS.copy()
    answer[1] = 6  # one wrong label (the truth is 5)
    good = write_submission(answer, tmp_path / "good.csv")
    with Running(db) as server:
        with pytest.raises(RevealError, match="3 rows"):
            submit_csv(server.url, 3, wrong_length)
        with pytest.raises(RevealError, match=r"\[9\]"):
            submit_csv(server.url, 3, wrong_values)
        assert submit_csv(server.url, 3, good)["score"] == pytest.approx(1 - 1 / len(LABELS))
        with pytest.raises(RevealError, match="HTTP 409"):
            submit_csv(server.url, 3, good)
        board = leaderboard(server.url)
    rows = {row["team"]: row for row in board["teams"]}
    assert rows["team"]["exercises"]["3"] == {"score": pytest.approx(1 - 1 / 14), "submitted": True}
    assert rows["other"]["exercises"]["3"] == {"score": 0.8, "submitted": False}


def test_a_malformed_csv_is_refused_with_its_line(db):
    with Running(db) as server:
        form = {"username": "team", "password": "secret", "exercise_id": 3}
        answer = requests.post(
            f"{server.url}/submit/", data=form, files={"file": ("x.csv", b"4\n4,5\n")}, timeout=10
        )
    assert answer.status_code == 400 and "line 2" in answer.text


def test_passwords_are_stored_hashed(db):
    assert b"secret" not in db.read_bytes()


def test_a_training_run_reveals_at_most_five_labels_through_the_api(db, tmp_path, caplog, capsys):
    import hydra

    from hackrobust.train import train

    from helpers import compose_train, offline_overrides

    run_dir = tmp_path / "run"
    overrides = [*offline_overrides("toy", run_dir), "method=divdis", "trainer.max_epochs=3"]
    datamodule = hydra.utils.instantiate(compose_train(overrides, run_dir).dataset)
    datamodule.prepare_data()
    Store(db).add_exercise(7, datamodule.generated_dir())

    with Running(db) as server:
        cfg = compose_train(
            [*overrides, "query=api", f"query.url={server.url}", "query.exercise_id=7"], run_dir
        )
        train(cfg)
    with sqlite3.connect(db) as con:  # the server's own record of what it revealed
        spent = con.execute("SELECT COUNT(*) FROM reveals WHERE exercise_id = 7").fetchone()[0]
    assert 1 <= spent <= 5
    assert (run_dir / "submission.csv").exists() and (run_dir / "submission.report.json").exists()
    everything = caplog.text + capsys.readouterr().out
    assert "secret" not in everything
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert b"secret" not in path.read_bytes(), path


# A training run that SIGKILLs itself once the third revealed label has come back from the
# server and before the ledger records it; then the same run again, as a user would.
KILLED_RUN = """
import os, signal, sys
from hackrobust.reveal import Ledger
from hackrobust.train import main

write = Ledger.write
def killing_write(self, state):
    if state["pending"] is None and len(state["revealed"]) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    write(self, state)
Ledger.write = killing_write
sys.argv = ["hackrobust.train", *sys.argv[1:]]
main()
"""


def test_a_training_run_killed_between_a_reveal_and_its_record_loses_no_label(db, tmp_path):
    import json
    import subprocess
    import sys

    import hydra

    from helpers import compose_train, offline_overrides

    overrides = [*offline_overrides("toy", tmp_path), "method=divdis", "trainer.max_epochs=2"]
    datamodule = hydra.utils.instantiate(compose_train(overrides, tmp_path / "compose").dataset)
    datamodule.prepare_data()
    Store(db).add_exercise(7, datamodule.generated_dir())

    def spent():
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT datum_id FROM reveals WHERE exercise_id = 7").fetchall()
        return sorted(datum for (datum,) in rows)

    with Running(db) as server:
        api = ["query=api", f"query.url={server.url}", "query.exercise_id=7"]
        run = [*overrides, *api, "trainer.enable_progress_bar=false"]
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_RUN, *run, f"hydra.run.dir={tmp_path / 'killed'}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr[-3000:]
        paid = spent()
        assert len(paid) == 3  # the server charged the third label; the ledger did not see it

        # Run again, one epoch longer: other heads, so the query would not ask for the pending
        # datum again by itself.
        rerun = [*run, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path / 'again'}"]
        again = subprocess.run(
            [sys.executable, "-m", "hackrobust.train", *rerun],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]

    report = json.loads((tmp_path / "again" / "submission.report.json").read_text())
    used = sorted(q["datum_id"] for q in report["revealed"])
    known = {q["datum_id"] for q in report["revealed"] if q["information_gain"] == 0.0}
    assert set(paid) <= known  # the three paid labels are evidence, not asked again
    assert used == spent() and len(used) == report["labels_revealed"] <= 5
    verdict = ": submit." if report["recommendation"] == "submit" else ": keep the default"
    printed = [line for line in again.stdout.splitlines() if "against the default 0.8" in line]
    assert len(printed) == 1 and verdict in printed[0]  # the verdict, on the console


def test_the_command_lines_register_serve_submit_and_survive_a_restart(tmp_path, monkeypatch):
    """`python -m hackrobust.server` and `python -m hackrobust.leaderboard` as a user runs them."""
    import json
    import subprocess
    import sys

    import hackrobust.server.__main__ as server_cli

    db, folder = tmp_path / "cli.sqlite", tmp_path / "exercise"
    folder.mkdir()
    np.save(folder / "y_val.npy", LABELS)
    monkeypatch.setenv("HACKROBUST_SERVER_PASSWORD", "pw-cli")
    server_cli.main(["--db", str(db), "add-team", "cli_team"])
    server_cli.main(["--db", str(db), "add-exercise", "4", str(folder)])
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port: served.append((host, port)))
    server_cli.main(["--db", str(db)])  # no command: serve
    assert served == [("127.0.0.1", 8000)]

    env = {**os.environ, "HACKROBUST_REVEAL_USERNAME": "cli_team",
           "HACKROBUST_REVEAL_PASSWORD": "pw-cli"}  # fmt: skip
    csv = write_submission(LABELS, tmp_path / "out.csv")

    def leaderboard_cli(*args):
        command = [sys.executable, "-m", "hackrobust.leaderboard", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    for restart in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "hackrobust.server", "--db", str(db), "serve",
                   "--port", str(port)]  # fmt: skip
        with subprocess.Popen(command, stderr=subprocess.DEVNULL) as process:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 30
            while True:
                try:
                    requests.get(f"{url}/leaderboard/", timeout=1)
                    break
                except requests.ConnectionError:
                    assert time.time() < deadline, "the server did not start"
                    time.sleep(0.2)
            submitted = leaderboard_cli("submit", url, "4", str(csv))
            shown = leaderboard_cli("show", url)
            process.terminate()
        if restart == 0:
            assert submitted.returncode == 0, submitted.stderr
            assert json.loads(submitted.stdout)["score"] == 1.0
        else:  # after a restart: the score is kept, and the one submission stays used
            assert submitted.returncode == 1 and "HTTP 409" in submitted.stderr
            assert "Traceback" not in submitted.stderr  # a clear error, not a crash
        board = {row["team"]: row for row in json.loads(shown.stdout)["teams"]}
        assert board["cli_team"]["exercises"]["4"] == {"score": 1.0, "submitted": True}


def test_an_exercise_without_metadata_gets_the_hackathon_default_for_its_id(tmp_path):
    """An official folder has no metadata.json: the leaderboard's default then follows the same
    rule as the run's report (0.5 for 888 and 999, 0.8 for the others)."""
    folder = tmp_path / "official"
    folder.mkdir()
    np.save(folder / "y_val.npy", LABELS)
    store = Store(tmp_path / "server.sqlite")
    for exercise_id in (3, 888, 999):
        store.add_exercise(exercise_id, folder)
    defaults = {e["id"]: e["default_score"] for e in store.leaderboard()["exercises"]}
    assert defaults == {3: 0.8, 888: 0.5, 999: 0.5}
