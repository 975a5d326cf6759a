"""The reveal client: protocol, budget, ledger, retries, crashes, concurrency, secrets."""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from reveal_server import FakeRevealServer

from hackrobust.reveal import (
    ApiRevealer,
    BudgetExhaustedError,
    Ledger,
    LedgerBusyError,
    OracleRevealer,
    RateLimitedError,
    RefusedError,
    RevealError,
)
from hackrobust.reveal import client as client_module
from hackrobust.reveal.client import retry_after_seconds

LABELS = [0, 2, 2, 0, 2, 0, 0, 2, 2, 0, 2, 2]


class ScriptedRevealServer(FakeRevealServer):
    """The fake server, whose first answers are scripted (status, headers) pairs that reveal and
    charge nothing (an endless script: it never reveals)."""

    def __init__(self, labels, script, **kwargs):
        self.script = iter(script)
        self.scripted = threading.local()  # the headers of the answer this thread is sending
        super().__init__(labels, **kwargs)

    def _handler(self):
        server = self

        class Handler(super()._handler()):
            def send_response(self, code, message=None):
                super().send_response(code, message)
                for name, value in self.scripted_headers().items():
                    if name != "Date":
                        self.send_header(name, value)

            def date_time_string(self, timestamp=None):  # the Date header send_response adds
                return self.scripted_headers().get("Date") or super().date_time_string(timestamp)

            def scripted_headers(self):
                return getattr(server.scripted, "headers", {})

        return Handler

    def answer(self, form: dict, path: str) -> tuple[int, dict]:
        with self.lock:
            step = next(self.script, None)
            self.scripted.headers = step[1] if step else {}
            if step:
                self.requests += 1
                return step[0], {"detail": "slow down" if step[0] == 429 else "try again"}
        return super().answer(form, path)


class FixedRandom:
    """A jitter source that records its draws and always draws `fraction` of the way."""

    def __init__(self, fraction=0.5):
        self.fraction, self.draws = fraction, []

    def uniform(self, low, high):
        self.draws.append((low, high))
        return low + self.fraction * (high - low)


@pytest.fixture
def sleeps(monkeypatch):
    """The client's waits, recorded instead of slept."""
    waits = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    return waits


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


def test_a_429_waits_as_long_as_retry_after_says_and_spends_the_label_once(credentials, sleeps):
    script = [(429, {"Retry-After": "1"})] * 2
    with ScriptedRevealServer(LABELS, script) as server:
        jitter = FixedRandom(0.5)
        client = ApiRevealer(server.url, exercise_id=1, backoff=0.2, rng=jitter)
        assert client.reveal(7) == LABELS[7]
        assert sleeps == [pytest.approx(1.1)] * 2  # the server's second, plus a little jitter
        assert jitter.draws == [(0, 0.2)] * 2
        assert server.requests == 3 and server.revealed["team"] == [7]
        assert client.ledger.read()["pending"] is None
        assert client.revealed == {7: LABELS[7]} and client.remaining == 4


def test_a_retry_after_date_is_read_on_the_servers_clock(credentials, sleeps):
    sent = time.time() + 3600  # the server's clock is an hour ahead of this machine's
    headers = {
        "Retry-After": email.utils.formatdate(sent + 2, usegmt=True),
        "Date": email.utils.formatdate(sent, usegmt=True),  # sent after the server's own Date
    }
    with ScriptedRevealServer(LABELS, [(429, headers)]) as server:
        client = ApiRevealer(server.url, exercise_id=1, rng=FixedRandom(0))
        assert client.reveal(2) == LABELS[2]
    assert sleeps == [pytest.approx(2, abs=0.01)]


def test_retry_after_is_seconds_or_an_http_date():
    assert retry_after_seconds("3") == 3 and retry_after_seconds(" 0 ") == 0
    assert retry_after_seconds("1.5") == 1.5
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(date, now=now) == 30
    assert retry_after_seconds(date, email.utils.formatdate(now + 10, usegmt=True)) == 20
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0
    for unreadable in (None, "", "-1", "nan", "inf", "soon", "Mon, 99 Foo 2024"):
        assert retry_after_seconds(unreadable) is None, unreadable


@pytest.mark.parametrize("status", [429, 503])
def test_without_retry_after_the_backoff_is_exponential_with_full_jitter(
    credentials, sleeps, status
):
    with ScriptedRevealServer(LABELS, [(status, {})] * 3) as server:
        jitter = FixedRandom(0.25)
        client = ApiRevealer(server.url, exercise_id=1, backoff=0.5, max_wait=1.5, rng=jitter)
        assert client.reveal(3) == LABELS[3]
        assert jitter.draws == [(0, 0.5), (0, 1.0), (0, 1.5)]  # capped at max_wait
        assert sleeps == [0.125, 0.25, 0.375]
        assert server.requests == 4 and server.revealed["team"] == [3]


def test_a_503_with_retry_after_waits_as_asked_too(credentials, sleeps):
    with ScriptedRevealServer(LABELS, [(503, {"Retry-After": "2"})]) as server:
        assert ApiRevealer(server.url, exercise_id=1, rng=FixedRandom(0)).reveal(1) == LABELS[1]
    assert sleeps == [2]


def test_a_permanent_429_ends_in_a_clear_error_and_charges_nothing(credentials, sleeps):
    forever = itertools.repeat((429, {"Retry-After": "1"}))
    with ScriptedRevealServer(LABELS, forever) as server:
        client = ApiRevealer(server.url, exercise_id=1, retries=3, rng=FixedRandom(0))
        with pytest.raises(RateLimitedError, match="Too Many Requests after 4 tries") as error:
            client.reveal(5)
        assert "nothing" in str(error.value) and "secret" not in str(error.value)
        assert server.requests == 4 and sleeps == [1, 1, 1]
        assert server.revealed == {}
    state = client.ledger.read()
    assert state["revealed"] == {} and state["pending"] is None and client.remaining == 5


def test_a_longer_retry_after_than_max_wait_stops_at_once(credentials, sleeps):
    with ScriptedRevealServer(LABELS, [(429, {"Retry-After": "3600"})]) as server:
        client = ApiRevealer(server.url, exercise_id=1, max_wait=60)
        with pytest.raises(RateLimitedError, match="wait 3600s, longer than max_wait=60s") as error:
            client.reveal(5)
        assert error.value.retry_after == 3600 and not error.value.maybe_charged
        assert server.requests == 1 and sleeps == []
        assert client.ledger.read()["pending"] is None and client.remaining == 5


def test_a_429_after_an_unclear_try_keeps_the_datum_pending(credentials, sleeps):
    # the 503 may have come after the reveal was charged: the datum stays pending, and the next
    # reveal asks for it again (free if it was charged) before it spends a new label
    script = [(503, {})] + [(429, {})] * 2
    with ScriptedRevealServer(LABELS, script) as server:
        client = ApiRevealer(server.url, exercise_id=1, retries=2, rng=FixedRandom(0))
        with pytest.raises(RateLimitedError, match="may have been charged") as error:
            client.reveal(6)
        assert error.value.maybe_charged and str(client.ledger.path) in str(error.value)
        assert client.ledger.read()["pending"] == 6 and client.remaining == 4
        assert client.reveal(8) == LABELS[8]
        assert client.revealed == {6: LABELS[6], 8: LABELS[8]}
        assert server.revealed["team"] == [6, 8]


def test_a_pending_datum_that_is_rate_limited_stays_pending(credentials, sleeps):
    with ScriptedRevealServer(LABELS, [(429, {})] * 2) as server:
        client = ApiRevealer(server.url, exercise_id=1, retries=1, rng=FixedRandom(0))
        client.ledger.path.parent.mkdir(parents=True)
        client.ledger.write({"description": {}, "revealed": {}, "pending": 6})
        with pytest.raises(RateLimitedError, match="earlier run stopped"):
            client.reveal(1)
        assert client.ledger.read()["pending"] == 6 and client.remaining == 4
        assert client.reveal(1) == LABELS[1] and client.revealed == {6: LABELS[6], 1: LABELS[1]}


def test_a_held_ledger_lock_times_out_with_a_clear_error(credentials):
    with FakeRevealServer(LABELS) as server:
        holder = ApiRevealer(server.url, exercise_id=2)
        held, release = threading.Event(), threading.Event()

        def hold():
            with holder.ledger.locked():
                held.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert held.wait(30)
            waiter = ApiRevealer(server.url, exercise_id=2, lock_timeout=0.5)
            start = time.monotonic()
            with pytest.raises(LedgerBusyError, match="another run is spending") as error:
                waiter.reveal(1)
            assert 0.5 <= time.monotonic() - start < 10
            assert str(waiter.ledger.path) in str(error.value)
            assert "Wait for that run to finish (or stop it)" in str(error.value)
            assert server.requests == 0 and waiter.ledger.read()["pending"] is None
        finally:
            release.set()
            thread.join()
        assert waiter.reveal(1) == LABELS[1]  # free again once the other run is done


# Another process holds the lock file as earlier versions of the ledger took it (an flock).
HOLD_THE_LOCK = """
import fcntl, sys, time
with open(sys.argv[1], "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_lock_held_by_another_process_times_out(tmp_path):
    ledger = Ledger(tmp_path / "ledger.json", lock_timeout=0.3)
    ledger.path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_THE_LOCK), str(ledger.lock_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(LedgerBusyError, match=re.escape(str(ledger.path))), ledger.locked():
            pass
        assert 0.3 <= time.monotonic() - start < 10
    finally:
        holder.kill()
        holder.wait()
    with ledger.locked():  # the system released the dead holder's lock
        ledger.write({"description": {}, "revealed": {1: 2}, "pending": None})
    assert ledger.revealed == {1: 2}
    with pytest.raises(ValueError, match="lock_timeout"):
        Ledger(tmp_path / "other.json", lock_timeout=-1)
