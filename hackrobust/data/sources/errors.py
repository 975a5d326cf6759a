"""The error raised when a real data set is not where the config says."""

from __future__ import annotations


class SourceUnavailableError(FileNotFoundError):
    """A real image source is absent; the message says where it was looked for and what to do."""

    def __init__(self, what: str, directory, expected: str, offline_source: str):
        super().__init__(
            f"{what} not found in {directory} (expected {expected}). Point paths.data_dir (or the "
            f"HACKROBUST_DATA_DIR environment variable) at a folder that holds it, or run offline "
            f"with dataset.source={offline_source}."
        )
