"""What the stages of one run share, and the loop that runs them in order, timing each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np

from hackrobust.utils.timing import callback_seconds

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One run's objects and results. `train` builds it; each stage reads it and adds to it."""

    datamodule: Any
    method: L.LightningModule
    trainer: L.Trainer
    # The run's trainer settings (a Hydra partial of `cfg.trainer`), for side fits.
    new_trainer: Callable[..., L.Trainer]
    # The model factory (a Hydra partial of `cfg.model`), for fresh models (students).
    new_model: Callable
    callbacks: dict[str, L.Callback]  # by config name; the active query is "query"
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None  # the weights the target was predicted with ("": the last)
    probs: np.ndarray | None = None  # (N_target, hypotheses, classes)
    choice: dict | None = None  # the active query's result (None without a query)
    trunk_state: dict | None = None  # the pretrained trunk's weights, if pretrained
    model_labels: np.ndarray | None = None  # the chosen hypothesis's labels (label values)
    submitted: np.ndarray | None = None  # the CSV's labels: the model's, revealed rows known
    report_sections: dict[str, Any] = field(default_factory=dict)  # extra report entries

    @property
    def head(self) -> int:
        """The hypothesis the CSV holds."""
        return int(self.method.chosen_head)

    @property
    def is_global_zero(self) -> bool:
        return self.trainer.is_global_zero


class Stage(Protocol):
    """One step of a run after its objects are built: reads the run, adds to it, returns it."""

    def __call__(self, run: Run) -> Run: ...


def run_stages(stages: Mapping[str, Stage], run: Run) -> Run:
    """Run `stages` in order. Each one's wall seconds go to `run.timings` under its name, less
    what a timed callback spent meanwhile, which goes under the callback's own name."""
    for name, stage in stages.items():
        log.info("Stage %s", name)
        before = callback_seconds(run.trainer.callbacks)
        start = time.perf_counter()
        run = stage(run)
        elapsed = time.perf_counter() - start
        for callback, seconds in callback_seconds(run.trainer.callbacks).items():
            spent = seconds - before.get(callback, 0.0)
            if spent > 0:
                run.timings[callback] = run.timings.get(callback, 0.0) + spent
                elapsed -= spent
        run.timings[name] = run.timings.get(name, 0.0) + elapsed
    return run
