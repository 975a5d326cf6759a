"""A Trainer for a stage beside the run's main fit (pretraining, the self-training student)."""

from __future__ import annotations

import hydra
import lightning as L
from omegaconf import DictConfig


def side_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """The run's trainer settings (device, precision, epochs...) without loggers, callbacks,
    checkpoints or validation: the main run logs and selects; this stage only trains."""
    options = dict(
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    return hydra.utils.instantiate(cfg.trainer, **(options | overrides))
