"""Revealing target labels under the 5-label budget: ledger, HTTP client, offline oracle."""

from hackrobust.reveal.client import (
    ApiRevealer,
    BudgetExhaustedError,
    OracleRevealer,
    RateLimitedError,
    RefusedError,
    Revealer,
    RevealError,
)
from hackrobust.reveal.ledger import Ledger, LedgerBusyError, ledger_path, state_dir

__all__ = [
    "ApiRevealer",
    "BudgetExhaustedError",
    "Ledger",
    "LedgerBusyError",
    "OracleRevealer",
    "RateLimitedError",
    "RefusedError",
    "RevealError",
    "Revealer",
    "ledger_path",
    "state_dir",
]
