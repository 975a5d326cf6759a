"""Label revealers under a hard budget: the hackathon42 HTTP API, and an offline answer key.

Both share `Revealer.reveal(datum_id)`: a datum already in the ledger costs nothing; a new one
is marked pending in the ledger, fetched, then recorded, all under the ledger's lock, and
never beyond the budget.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hackrobust.reveal.ledger import DEFAULT_LOCK_TIMEOUT, Ledger, ledger_path

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 5
USERNAME_ENV = "HACKROBUST_REVEAL_USERNAME"
PASSWORD_ENV = "HACKROBUST_REVEAL_PASSWORD"


class RevealError(RuntimeError):
    """The server refused a reveal (bad credentials, budget spent, unknown datum...)."""


class BudgetExhaustedError(RevealError):
    """Revealing one more label would exceed the budget."""


class RefusedError(RevealError):
    """The server answered with a 4xx: that request revealed and charged nothing (asking again
    for a datum already revealed is free, so a charged datum is never refused). `unrevealable`:
    the datum can never be revealed (not a target row), so no request ever charged it."""

    def __init__(self, message: str, status: int, unrevealable: bool = False):
        super().__init__(message)
        self.status = status
        self.unrevealable = unrevealable


class RateLimitedError(RevealError):
    """The server kept answering 429 Too Many Requests through every retry, or asked for a
    longer wait than the client's `max_wait`. A 429 revealed and charged nothing; `maybe_charged`:
    an earlier try of the same reveal failed without an answer (or with a 5xx), so it may have
    been charged, and the datum stays pending in the ledger."""

    def __init__(self, message: str, retry_after: float | None, maybe_charged: bool):
        super().__init__(message)
        self.retry_after = retry_after
        self.maybe_charged = maybe_charged


def retry_after_seconds(
    value: str | None, date: str | None = None, now: float | None = None
) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds (0 for a date already past): its
    value is a number of seconds or an HTTP date, measured from the answer's `Date` header where
    it has one (the server's clock), else from `now` (default: this machine's clock). None when
    absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    until = _http_date(value)
    if until is None:
        return None
    sent = _http_date(date) if date else None
    reference = sent.timestamp() if sent is not None else (time.time() if now is None else now)
    return max(0.0, until.timestamp() - reference)


def _http_date(value: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class Revealer:
    """Reveals target labels (in label values), at most `budget` distinct data per exercise."""

    def __init__(self, ledger: Ledger, budget: int = DEFAULT_BUDGET):
        if not budget >= 0:
            raise ValueError(f"budget must be non-negative, got {budget}")
        self.ledger = ledger
        self.budget = budget

    def _fetch(self, datum_id: int) -> int:
        raise NotImplementedError

    @property
    def revealed(self) -> dict[int, int]:
        return self.ledger.revealed

    @property
    def remaining(self) -> int:
        state = self.ledger.read()
        return self.budget - len(state["revealed"]) - (state["pending"] is not None)

    def reveal(self, datum_id: int) -> int:
        datum_id = int(datum_id)
        with self.ledger.locked():
            state = self.ledger.read()
            if datum_id in state["revealed"]:
                return state["revealed"][datum_id]
            self._complete_pending(state)
            if len(state["revealed"]) >= self.budget:
                raise BudgetExhaustedError(
                    f"the budget of {self.budget} labels is spent (revealed: "
                    f"{sorted(state['revealed'])}); ledger {self.ledger.path}"
                )
            try:
                return self._complete(state, datum_id)
            except RefusedError:
                self._clear_pending(state)  # refused now, and never asked before: not charged
                raise
            except RateLimitedError as error:
                if not error.maybe_charged:  # only 429s: no try reached the reveal
                    self._clear_pending(state)
                raise

    def complete_pending(self) -> None:
        """Finish a reveal that an earlier run left half done, so that its label is known."""
        with self.ledger.locked():
            self._complete_pending(self.ledger.read())

    def _complete_pending(self, state: dict) -> None:
        """A crash left `pending` between request and record: ask again, at no extra cost."""
        datum_id = state["pending"]
        if datum_id is None:
            return
        try:
            self._complete(state, datum_id)
        except RateLimitedError as error:
            raise RateLimitedError(
                f"datum {datum_id} was being revealed when an earlier run stopped, and may have "
                f"been charged, so it stays pending in {self.ledger.path} and counts against "
                f"the budget until a run asks for it again (at no cost): {error}",
                error.retry_after,
                maybe_charged=True,
            ) from error
        except RefusedError as error:
            if not error.unrevealable:  # the earlier request may have been charged
                raise RevealError(
                    f"datum {datum_id} was being revealed when an earlier run stopped, and is "
                    f"now refused ({error}). It may have been charged, so it still counts "
                    "against the budget: fix the cause (credentials?) and run again; if it was "
                    f'never charged, set "pending" to null in {self.ledger.path}'
                ) from error
            log.warning("Datum %d, pending since an earlier run, is unknown: dropped", datum_id)
            self._clear_pending(state)

    def _clear_pending(self, state: dict) -> None:
        state["pending"] = None
        self.ledger.write(state)

    def _complete(self, state: dict, datum_id: int) -> int:
        state["pending"] = datum_id
        self.ledger.write(state)
        label = self._fetch(datum_id)
        state["revealed"][datum_id] = label
        state["pending"] = None
        self.ledger.write(state)
        log.info(
            "Revealed datum %d: label %d (%d left)",
            datum_id,
            label,
            self.budget - len(state["revealed"]),
        )
        return label


class ApiRevealer(Revealer):
    """`POST {url}/reveal/` with form fields username, password, exercise_id, datum_id; never
    more than the hackathon's 5 labels per exercise, whatever the server would allow.

    Credentials come from the environment (HACKROBUST_REVEAL_USERNAME/PASSWORD) and never
    appear in logs, files or errors. Connection errors, 5xx and 429 (Too Many Requests) answers
    are tried again, `retries` times at most: after the wait the server's `Retry-After` asks for
    (plus up to `backoff` seconds of jitter), else after an exponential backoff with full jitter
    (uniform between 0 and `backoff * 2**attempt`), never longer than `max_wait` seconds; a
    server that asks for more than `max_wait` ends the reveal at once (`RateLimitedError`). Any
    other 4xx answer is a `RefusedError` that says what the server said. `lock_timeout`: how long
    to wait for another run's hold on the ledger (`LedgerBusyError`); ignored with `ledger`.
    `rng`: the source of the jitter (tests make it deterministic).
    """

    def __init__(
        self,
        url: str,
        exercise_id: int,
        budget: int = DEFAULT_BUDGET,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        ledger: Ledger | None = None,
        max_wait: float = 30.0,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        rng: random.Random | None = None,
    ):
        if budget > DEFAULT_BUDGET:
            raise ValueError(
                f"the hackathon's reveal API allows {DEFAULT_BUDGET} labels per exercise; got "
                f"budget={budget} (query.budget): lower it, or simulate more with query=oracle"
            )
        missing = [name for name in (USERNAME_ENV, PASSWORD_ENV) if not os.environ.get(name)]
        if missing:
            raise RevealError(f"set {' and '.join(missing)} in the environment to use query=api")
        self.url = url.rstrip("/")
        self.exercise_id = int(exercise_id)
        self._username = os.environ[USERNAME_ENV]
        self._password = os.environ[PASSWORD_ENV]
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_wait = max_wait
        self._rng = rng or random.Random()
        description = {"url": self.url, "exercise_id": self.exercise_id, "username": self._username}
        ledger = ledger or Ledger(
            ledger_path(self.url, self._username, self.exercise_id), description, lock_timeout
        )
        super().__init__(ledger, budget)

    def check_server(self) -> None:
        """Before training: the server accepts a connection (no request is sent, nothing is
        spent). Raises `RevealError` saying where it looked."""
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RevealError(f"query.url must be an http(s) URL, got {self.url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=self.timeout).close()
        except OSError as error:
            raise RevealError(
                f"the reveal server {self.url} does not answer ({error}): check query.url and "
                "that the server is up; no label was spent"
            ) from None

    def _fetch(self, datum_id: int) -> int:
        import requests

        form = {
            "username": self._username,
            "password": self._password,
            "exercise_id": self.exercise_id,
            "datum_id": datum_id,
        }
        maybe_charged = False  # a try that got no answer, or a 5xx, may have been charged
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                response = requests.post(f"{self.url}/reveal/", data=form, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__}"
                maybe_charged = True
            else:
                status = response.status_code
                if status < 400:
                    return self._label_from(response, datum_id)
                if status < 500 and status != 429:
                    raise RefusedError(
                        f"{self.url}/reveal/ refused datum {datum_id} of exercise "
                        f"{self.exercise_id}: HTTP {status} {response.text[:200]}",
                        status,
                    )
                problem = f"HTTP {status}"
                maybe_charged = maybe_charged or status != 429
                retry_after = retry_after_seconds(
                    response.headers.get("Retry-After"), response.headers.get("Date")
                )
                if retry_after is not None and retry_after > self.max_wait:
                    raise self._rate_limited(
                        datum_id,
                        f"{problem}, which asks to wait {retry_after:.0f}s, longer than "
                        f"max_wait={self.max_wait:g}s: try again later",
                        retry_after,
                        maybe_charged,
                    )
            if attempt < self.retries:
                delay = self._delay(attempt, retry_after)
                log.warning(
                    "Reveal of datum %d failed (%s); retrying in %.1fs", datum_id, problem, delay
                )
                time.sleep(delay)
        if problem == "HTTP 429":
            raise self._rate_limited(
                datum_id,
                f"HTTP 429 Too Many Requests after {self.retries + 1} tries: try again later",
                retry_after,
                maybe_charged,
            )
        raise RevealError(
            f"{self.url}/reveal/ unreachable after {self.retries + 1} tries ({problem})"
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's wait plus a little jitter, else a fully jittered exponential backoff;
        never longer than `max_wait` (a longer `Retry-After` never gets here)."""
        if retry_after is not None:
            return min(retry_after + self._rng.uniform(0, self.backoff), self.max_wait)
        return self._rng.uniform(0, min(self.backoff * 2**attempt, self.max_wait))

    def _rate_limited(
        self, datum_id: int, why: str, retry_after: float | None, maybe_charged: bool
    ) -> RateLimitedError:
        message = f"{self.url}/reveal/ cannot serve datum {datum_id} now: {why}"
        if maybe_charged:
            message += (
                ". An earlier try ended without an answer (or with a 5xx), so it may have been "
                f"charged: the datum stays pending in {self.ledger.path} and the next run asks "
                "for it again, at no cost"
            )
        else:
            message += " (these tries charged nothing)"
        return RateLimitedError(message, retry_after, maybe_charged)

    def _label_from(self, response, datum_id: int) -> int:
        try:
            answer = response.json()
            label = int(answer["label"])
        except (ValueError, KeyError, TypeError) as error:
            raise RevealError(
                f"unexpected answer from {self.url}/reveal/: {response.text[:200]}"
            ) from error
        if int(answer.get("datum_id", datum_id)) != datum_id:
            raise RevealError(
                f"asked for datum {datum_id}, the server answered for {answer['datum_id']}"
            )
        return label


class OracleRevealer(Revealer):
    """Reads labels from a local answer key (`y_val.npy`) under the same budget and ledger."""

    def __init__(
        self,
        answer_key: str | os.PathLike | None = None,
        dataset_dir: str | os.PathLike | None = None,
        budget: int = DEFAULT_BUDGET,
        ledger_file: str | os.PathLike | None = None,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ):
        if answer_key is None and dataset_dir is None:
            raise ValueError("give the answer key, or the dataset folder that holds y_val.npy")
        path = Path(answer_key) if answer_key is not None else Path(dataset_dir) / "y_val.npy"
        if not path.is_file():
            raise FileNotFoundError(f"answer key {path} not found: query=oracle needs a y_val.npy")
        self.labels = np.load(path, allow_pickle=False)
        description = {"answer_key": str(path.resolve())}
        ledger_file = ledger_file or ledger_path(str(path.resolve()), "oracle", 0)
        super().__init__(Ledger(ledger_file, description, lock_timeout), budget)

    def _fetch(self, datum_id: int) -> int:
        if not 0 <= datum_id < len(self.labels):
            raise RefusedError(
                f"datum {datum_id} is not a target row (0 to {len(self.labels) - 1})",
                404,
                unrevealable=True,
            )
        return int(self.labels[datum_id])
