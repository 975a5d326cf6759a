"""Label revealers under a hard budget: the hackathon42 HTTP API, and an offline answer key.

Both share `Revealer.reveal(datum_id)`: a datum already in the ledger costs nothing; a new one
is marked pending in the ledger, fetched, then recorded, all under the ledger's lock, and
never beyond the budget.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from hackrobust.reveal.ledger import Ledger, ledger_path

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
    appear in logs, files or errors. Connection errors and 5xx answers are retried with
    exponential backoff; a 4xx answer is an error that says what the server said.
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
        description = {"url": self.url, "exercise_id": self.exercise_id, "username": self._username}
        ledger = ledger or Ledger(
            ledger_path(self.url, self._username, self.exercise_id), description
        )
        super().__init__(ledger, budget)

    def _fetch(self, datum_id: int) -> int:
        import requests

        form = {
            "username": self._username,
            "password": self._password,
            "exercise_id": self.exercise_id,
            "datum_id": datum_id,
        }
        for attempt in range(self.retries + 1):
            try:
                response = requests.post(f"{self.url}/reveal/", data=form, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"{type(error).__name__}"
            else:
                if response.status_code < 400:
                    return self._label_from(response, datum_id)
                if response.status_code < 500:
                    raise RefusedError(
                        f"{self.url}/reveal/ refused datum {datum_id} of exercise "
                        f"{self.exercise_id}: HTTP {response.status_code} {response.text[:200]}",
                        response.status_code,
                    )
                problem = f"HTTP {response.status_code}"
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                log.warning(
                    "Reveal of datum %d failed (%s); retrying in %.1fs", datum_id, problem, delay
                )
                time.sleep(delay)
        raise RevealError(
            f"{self.url}/reveal/ unreachable after {self.retries + 1} tries ({problem})"
        )

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
    ):
        if answer_key is None and dataset_dir is None:
            raise ValueError("give the answer key, or the dataset folder that holds y_val.npy")
        path = Path(answer_key) if answer_key is not None else Path(dataset_dir) / "y_val.npy"
        if not path.is_file():
            raise FileNotFoundError(f"answer key {path} not found: query=oracle needs a y_val.npy")
        self.labels = np.load(path, allow_pickle=False)
        description = {"answer_key": str(path.resolve())}
        ledger_file = ledger_file or ledger_path(str(path.resolve()), "oracle", 0)
        super().__init__(Ledger(ledger_file, description), budget)

    def _fetch(self, datum_id: int) -> int:
        if not 0 <= datum_id < len(self.labels):
            raise RefusedError(
                f"datum {datum_id} is not a target row (0 to {len(self.labels) - 1})",
                404,
                unrevealable=True,
            )
        return int(self.labels[datum_id])
