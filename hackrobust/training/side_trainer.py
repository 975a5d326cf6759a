"""A Trainer for a stage beside the run's main fit (pretraining, the self-training student)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L

from hackrobust.utils.console import EpochProgress


def side_trainer(
    new_trainer: Callable[..., L.Trainer],
    name: str = "side fit",
    callbacks: list[L.Callback] = (),
    **overrides,
) -> L.Trainer:
    """A Trainer from `new_trainer` (the run's settings: device, precision, epochs...) without
    loggers, checkpoints or validation: the main run logs and selects; this stage only trains.
    Its callbacks: one that logs each epoch's losses under `name`, then `callbacks`."""
    options = dict(
        logger=False,
        callbacks=[EpochProgress(name), *callbacks],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    return new_trainer(**(options | overrides))
