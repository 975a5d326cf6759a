"""Keep the suite hermetic: no real data, no network, caches and logs in temporary folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="hackrobust-tests-"))
# Set before any test imports the package: the suite never reads ../shared/data or ~/.cache.
os.environ["HACKROBUST_DATA_DIR"] = str(_SESSION_DIR / "no-real-data")
os.environ["HACKROBUST_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ["HACKROBUST_LOG_DIR"] = str(_SESSION_DIR / "logs")
os.environ["WANDB_MODE"] = "disabled"
os.environ.pop("WANDB_API_KEY", None)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR
