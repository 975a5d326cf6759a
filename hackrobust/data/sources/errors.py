"""The error raised when a real data set is not where the config says."""

from __future__ import annotations

from os import PathLike


class SourceUnavailableError(FileNotFoundError):
    """A real image source is absent; the message says where it was looked for and what to do."""

    def __init__(
        self,
        what: str,
        directory: str | PathLike,
        expected: str,
        offline_source: str,
        reason: str = "",
    ):
        super().__init__(
            f"{what} not found in {directory} (expected {expected}"
            f"{'; ' + reason if reason else ''}). Set the HACKROBUST_DATA_DIR environment "
            f"variable or pass paths.data_dir=... to a folder that holds it, or run offline with "
            f"dataset.source={offline_source}."
        )
