"""What a run prints: a short header, one line per epoch, and no third-party chatter."""

from __future__ import annotations

import logging
import sys
import warnings

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

# Lightning's lines that repeat on every Trainer (the run's and each side fit's) and say nothing
# about the run: the accelerators found, and advertisements.
_LIGHTNING_NOISE = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")
# The config groups the run's header names.
_HEADER_GROUPS = ("experiment", "dataset", "method", "model", "query", "trainer")
# Known third-party deprecation warnings a user cannot act on (Lightning's own pytree use).
_KNOWN_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated",)


class _DropLines(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def quiet_third_parties() -> None:
    """Silence Lightning's accelerator lines and tips, and known deprecation warnings."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropLines(_LIGHTNING_NOISE))
    for message in _KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def shows_on_console() -> bool:
    """Whether the root logger already writes INFO lines to stdout or stderr."""
    root = logging.getLogger()
    return root.isEnabledFor(logging.INFO) and any(
        type(handler) is logging.StreamHandler
        and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)
        for handler in root.handlers
    )


@rank_zero_only
def announce(logger: logging.Logger, line: str) -> None:
    """Log `line` (so the run's log file has it) and make sure the console shows it too."""
    logger.info(line)
    if not shows_on_console():
        print(line, flush=True)


class EpochProgress(L.Callback):
    """One log line per training epoch, with its losses: progress a log file and a piped
    console can read (the progress bar draws only on a terminal)."""

    def __init__(self, name: str = "fit"):
        self.name = name

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        losses = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if "loss" in k and v.numel() == 1
        }
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()))
        log.info(
            "%s epoch %d/%d%s",
            self.name, trainer.current_epoch + 1, trainer.max_epochs, f": {shown}" if shown else "",
        )  # fmt: skip


@rank_zero_only
def print_header(choices: dict, output_dir: str) -> None:
    """One line naming what runs (the chosen config options) and where it writes."""
    shown = [f"{group}={choices[group]}" for group in _HEADER_GROUPS if choices.get(group)]
    print(f"hackrobust: {' '.join(shown)}; output: {output_dir}", flush=True)
