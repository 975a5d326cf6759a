"""A Hydra callback that refuses a run folder an earlier run already used, before Hydra writes
its `.hydra/` config files there (they would replace the earlier run's)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def earlier_run_in(folder: str | Path) -> bool:
    """Whether `folder` holds an earlier run: its saved config or anything else."""
    folder = Path(folder)
    return folder.is_dir() and any(folder.iterdir())


def set_aside(folder: str | Path) -> Path:
    """Rename a used `folder` (a study's run that stopped before it was recorded) to
    `<folder>.unfinished-<n>`, so the run can start again there; its logs are kept."""
    folder = Path(folder)
    if earlier_run_in(folder):
        n = 1
        while folder.with_name(f"{folder.name}.unfinished-{n}").exists():
            n += 1
        folder.rename(folder.with_name(f"{folder.name}.unfinished-{n}"))
    return folder


class RefuseUsedRunFolder(Callback):
    """`hydra.run.dir` (`hydra.sweep.dir` in a multirun) must be new or empty: a run never
    overwrites another's config, logs or checkpoints. One line and exit status 2 otherwise.
    A run that saves no config (`hydra.output_subdir=null`: Lightning's DDP processes, which
    join their launcher's folder) is let through."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.output_subdir is not None:
            self._refuse_used(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._refuse_used(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _refuse_used(folder: str, key: str) -> None:
        if earlier_run_in(folder):
            print(
                f"error: {key}={folder} already holds an earlier run; give a new folder "
                "(the default is a fresh timestamped one under logs/)",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(2)
