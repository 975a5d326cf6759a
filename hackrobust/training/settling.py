"""Stop a fit once its predictions settle: few rows change class from one epoch to the next.

A student that starts from its teacher moves only where it corrects it; once an epoch changes
the class of almost no target row, more epochs buy little. `PredictionsSettle` predicts the
given rows before the first epoch and after each one, keeps every epoch's classes (so a study
can score each epoch against an answer key) and, with a `tolerance`, stops the fit after
`patience` epochs in a row that each changed the class of at most that share of the rows.

It is early stopping (Prechelt, "Early Stopping - But When?", 1998) with patience, on the
change of the predictions rather than a validation loss. Lightning's `EarlyStopping` watches a
logged number; this change needs the previous epoch's classes, so the callback keeps them.
"""

from __future__ import annotations

import itertools

import lightning as L
import numpy as np
import torch

from hackrobust.methods.inference import target_probabilities


def settled(changed: list[float], tolerance: float, patience: int) -> bool:
    """Whether the last `patience` epochs of `changed` (each epoch's share of rows whose class
    it changed) each changed at most `tolerance`: the rule that stops a fit."""
    recent = changed[-patience:]
    return len(recent) == patience and max(recent) <= tolerance


class PredictionsSettle(L.Callback):
    """Predict `x` with the fit's first head before training and after every epoch.

    tolerance: the largest share of rows whose class may change in an epoch that counts as
        settled; None never stops the fit (the classes are still kept).
    patience: settled epochs in a row that stop the fit.
    """

    def __init__(self, x: torch.Tensor, tolerance: float | None = None, patience: int = 2):
        if tolerance is not None and not 0 <= tolerance < 1:
            raise ValueError(f"the settling tolerance must be in [0, 1) or null, got {tolerance}")
        if patience < 1:
            raise ValueError(f"the settling patience must be at least 1, got {patience}")
        self.x, self.tolerance, self.patience = x, tolerance, patience
        self.classes: list[np.ndarray] = []  # per epoch, from the start: (N,) predicted classes
        self.stopped = False

    @property
    def changed(self) -> list[float]:
        """Per epoch trained: the share of rows whose class that epoch changed."""
        return [float(np.mean(a != b)) for a, b in itertools.pairwise(self.classes)]

    def _predict(self, module: L.LightningModule) -> None:
        self.classes.append(target_probabilities(module, self.x)[:, 0].argmax(-1))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._predict(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._predict(pl_module)
        if self.tolerance is None or trainer.current_epoch + 1 >= trainer.max_epochs:
            return
        if settled(self.changed, self.tolerance, self.patience):
            self.stopped = trainer.should_stop = True
