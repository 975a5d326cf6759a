"""The reveal client: protocol, budget, ledger, retries, crashes, concurrency, secrets."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from reveal_server import FakeRevealServer

from hackrobust.reveal import (
    ApiRevealer,
    BudgetExhaustedError,
    Ledger,
    OracleRevealer,
    RefusedError,
    RevealError,
)

LABELS = [0, 2, 2, 0, 2, 0, 0, 2, 2, 0, 2, 2]


@pytest.fixture
def credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("HACKROBUST_REVEAL_USERNAME", "team")
    monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "secret")
    monkeypatch.setenv("HACKROBUST_STATE_DIR", str(tmp_path / "state"))


def test_reveals_through_the_protocol_and_reuses_the_ledger(credentials, tmp_path):
    with FakeRevealServer(LABELS) as server:
        client = ApiRevealer(server.url, exercise_id=3)
        assert [client.reveal(i) for i in (1, 3, 1)] == [2, 0, 2]
        assert server.requests == 2  # datum 1 came from the ledger the second time
        again = ApiRevealer(server.url, exercise_id=3)  # a re-run
        assert again.revealed == {1: 2, 3: 0} and again.remaining == 3
        assert again.reveal(3) == 0 and server.requests == 2
    ledger = json.loads(again.ledger.path.read_text())
    assert ledger["revealed"] == {"1": 2, "3": 0}
    assert again.ledger.path.is_relative_to(tmp_path / "state")


def test_never_more_than_the_budget(credentials):
    with FakeRevealServer(LABELS, budget=100) as server:
        client = ApiRevealer(server.url, exercise_id=1, budget=5)
        for datum in range(5):
            client.reveal(datum)
        with pytest.raises(BudgetExhaustedError, match="budget of 5"):
            client.reveal(7)
        assert client.reveal(4) == LABELS[4]  # already revealed: free
        assert len(server.revealed["team"]) == 5
        with pytest.raises(ValueError, match="allows 5 labels per exercise; got budget=6"):
            ApiRevealer(server.url, exercise_id=1, budget=6)


def test_concurrent_reveals_never_exceed_the_budget(credentials):
    with FakeRevealServer(LABELS, budget=100) as server:
        errors = []

        def worker(datum):
            try:
                ApiRevealer(server.url, exercise_id=2, budget=5).reveal(datum)
            except BudgetExhaustedError as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(d,)) for d in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(server.revealed["team"]) == 5 and len(errors) == 7


def test_a_crash_between_reveal_and_record_loses_no_label(credentials, monkeypatch):
    with FakeRevealServer(LABELS, budget=5) as server:
        client = ApiRevealer(server.url, exercise_id=4)
        writes = []
        original = Ledger.write

        def crash_after_the_request(self, state):
            writes.append(dict(state))
            if state["pending"] is None and len(writes) == 2:
                raise KeyboardInterrupt("killed before the label was recorded")
            original(self, state)

        monkeypatch.setattr(Ledger, "write", crash_after_the_request)
        with pytest.raises(KeyboardInterrupt):
            client.reveal(6)
        monkeypatch.setattr(Ledger, "write", original)
        assert ApiRevealer(server.url, exercise_id=4).ledger.read()["pending"] == 6

        rerun = ApiRevealer(server.url, exercise_id=4)
        assert rerun.remaining == 4  # the pending datum counts as spent
        assert rerun.reveal(8) == LABELS[8]
        assert rerun.revealed == {6: LABELS[6], 8: LABELS[8]}
        assert server.revealed["team"] == [6, 8]  # datum 6 was not charged twice


# A process that reveals datum 6, then SIGKILLs itself once the label has come back: before the
# ledger write starts ("before the write"), or with the new ledger written to its temporary file
# but not yet renamed into place ("before the rename"). Nothing of Python's clean-up runs.
KILLED_REVEAL = """
import os, signal, sys
from hackrobust.reveal import ApiRevealer, Ledger, ledger

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "before the write":
    write = Ledger.write
    def killing_write(self, state):
        if state["revealed"]:
            die()
        write(self, state)
    Ledger.write = killing_write
else:
    replace, calls = ledger.os.replace, []
    def killing_replace(source, target):
        calls.append(source)
        if len(calls) == 2:  # the first one records the pending datum
            die()
        replace(source, target)
    ledger.os.replace = killing_replace
ApiRevealer(sys.argv[1], exercise_id=4).reveal(6)
"""


@pytest.mark.parametrize("moment", ["before the write", "before the rename"])
def test_a_process_killed_after_the_answer_loses_no_label(credentials, moment):
    with FakeRevealServer(LABELS, budget=5) as server:
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_REVEAL, server.url, moment], capture_output=True
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
        assert server.revealed["team"] == [6]  # the server answered and charged it

        rerun = ApiRevealer(server.url, exercise_id=4)
        assert rerun.ledger.read()["pending"] == 6 and rerun.remaining == 4
        assert rerun.reveal(8) == LABELS[8]
        assert rerun.revealed == {6: LABELS[6], 8: LABELS[8]}  # 6 asked again, free
        assert server.revealed["team"] == [6, 8]
        assert not list(rerun.ledger.path.parent.glob(f".{rerun.ledger.path.name}.*"))


def test_retries_5xx_then_succeeds(credentials):
    with FakeRevealServer(LABELS, fail_first=2) as server:
        assert ApiRevealer(server.url, exercise_id=1, backoff=0.01).reveal(2) == 2
        assert server.requests == 3


def test_clear_errors_for_4xx_and_unreachable(credentials, monkeypatch):
    with FakeRevealServer(LABELS) as server:
        with pytest.raises(RevealError, match="unknown datum 99"):
            ApiRevealer(server.url, exercise_id=1).reveal(99)
        monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "wrong")
        with pytest.raises(RevealError, match="HTTP 401") as error:
            ApiRevealer(server.url, exercise_id=1).reveal(1)
        assert "wrong" not in str(error.value)
        url = server.url
    with pytest.raises(RevealError, match="unreachable after 2 tries"):
        ApiRevealer(url, exercise_id=1, retries=1, backoff=0.01, timeout=1).reveal(1)


def test_a_refused_datum_is_not_left_pending(credentials):
    with FakeRevealServer(LABELS, budget=2) as server:
        client = ApiRevealer(server.url, exercise_id=1)
        with pytest.raises(RefusedError, match="unknown datum 99") as unknown:
            client.reveal(99)
        assert unknown.value.status == 404
        assert client.reveal(1) == LABELS[1] and client.reveal(2) == LABELS[2]
        with pytest.raises(RefusedError, match="HTTP 403"):  # the server's budget is 2
            client.reveal(3)
        assert client.ledger.read()["pending"] is None and client.remaining == 3
        assert client.reveal(1) == LABELS[1]  # what was revealed stays free


def test_a_pending_datum_from_a_crash_is_finished_or_explained(credentials, monkeypatch):
    with FakeRevealServer(LABELS) as server:
        client = ApiRevealer(server.url, exercise_id=1)
        client.ledger.path.parent.mkdir(parents=True)
        client.ledger.write({"description": {}, "revealed": {}, "pending": 6})
        client.complete_pending()  # the run starts by finishing it: its label is evidence
        assert client.revealed == {6: LABELS[6]} and server.revealed["team"] == [6]

        client.ledger.write({"description": {}, "revealed": {}, "pending": 7})
        monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "wrong")
        refused = ApiRevealer(server.url, exercise_id=1)
        with pytest.raises(RevealError, match="earlier run stopped") as error:
            refused.reveal(1)
        assert str(refused.ledger.path) in str(error.value) and "wrong" not in str(error.value)
        assert refused.ledger.read()["pending"] == 7 and refused.remaining == 4  # may be charged

        monkeypatch.setenv("HACKROBUST_REVEAL_PASSWORD", "secret")
        client.ledger.write({"description": {}, "revealed": {}, "pending": 99})
        with pytest.raises(RevealError, match="earlier run stopped"):  # a 404 proves nothing
            ApiRevealer(server.url, exercise_id=1).reveal(1)  # (a moved server, a wrong path)


def test_an_oracle_drops_a_pending_row_that_is_not_in_its_answer_key(tmp_path):
    np.save(tmp_path / "y_val.npy", np.array(LABELS))
    oracle = OracleRevealer(dataset_dir=tmp_path, ledger_file=tmp_path / "ledger.json")
    oracle.ledger.write({"description": {}, "revealed": {}, "pending": 99})
    assert oracle.reveal(1) == LABELS[1]  # row 99 can never be revealed, so never was charged
    assert oracle.ledger.read() == {"description": {}, "revealed": {1: LABELS[1]}, "pending": None}


def test_missing_credentials(monkeypatch):
    monkeypatch.delenv("HACKROBUST_REVEAL_USERNAME", raising=False)
    monkeypatch.delenv("HACKROBUST_REVEAL_PASSWORD", raising=False)
    with pytest.raises(
        RevealError, match="HACKROBUST_REVEAL_USERNAME and HACKROBUST_REVEAL_PASSWORD"
    ):
        ApiRevealer("http://127.0.0.1:1", exercise_id=1)


def test_password_appears_in_no_log_or_file(credentials, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeRevealServer(LABELS, fail_first=1) as server:
        client = ApiRevealer(server.url, exercise_id=5, backoff=0.01)
        client.reveal(0)
    assert "secret" not in caplog.text
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert b"secret" not in path.read_bytes()


def test_oracle_follows_the_same_rules(tmp_path):
    np.save(tmp_path / "y_val.npy", np.array(LABELS))
    oracle = OracleRevealer(dataset_dir=tmp_path, budget=2, ledger_file=tmp_path / "ledger.json")
    assert oracle.reveal(1) == 2 and oracle.reveal(1) == 2 and oracle.reveal(0) == 0
    with pytest.raises(BudgetExhaustedError):
        oracle.reveal(5)
    with pytest.raises(FileNotFoundError, match="y_val.npy"):
        OracleRevealer(dataset_dir=tmp_path / "nothing")
