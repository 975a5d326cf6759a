"""A Trainer for a stage beside the run's main fit (pretraining, the self-training student)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L


def side_trainer(new_trainer: Callable[..., L.Trainer], **overrides) -> L.Trainer:
    """A Trainer from `new_trainer` (the run's settings: device, precision, epochs...) without
    loggers, callbacks, checkpoints or validation: the main run logs and selects; this stage
    only trains."""
    options = dict(
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    return new_trainer(**(options | overrides))
