"""Keep, for the head the query chooses, its last epoch that still fits the held-out rows.

Every candidate rule fits the labeled rows, so a head whose held-out labeled accuracy falls well
below its best so far has stopped being one. This happens with DivDis when few unlabeled rows are
decorrelated (a low mix rate): late in training the diversity term can push a head to disagree
on correlated rows, and its held-out and target accuracies fall together. Only the chosen head's
fit matters: a wrong head (a mix of features) may drift on the held-out rows while the chosen one
still improves on the target, so a rule asking every head to fit (`val/select_last_fitting`)
can stop too early.

`HeadFittingCheckpoints` records each head's held-out accuracy per epoch and keeps the weights of
every epoch some hypothesis may still be selected at (at most one per head, one for all heads
together, and the newest). After the query has chosen a head on the last epoch's weights, `train`
predicts again with that head's selected epoch (`selected_epoch`), re-choosing the head there from
the labels already revealed. A mixed class-pair hypothesis (`hackrobust.methods.pair_switches`, index
>= the number of heads) reads every head, so its epoch is the last at which every head fits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L

from hackrobust.metrics.fitting import still_fits

log = logging.getLogger(__name__)


def last_fitting_epoch(
    history: dict[int, list[float]], heads: int | Sequence[int], tolerance: float
) -> int | None:
    """The last epoch at which the held-out accuracy of each of `heads` is within `tolerance`
    of its best at that epoch or before (None with no such epoch)."""
    heads = [heads] if isinstance(heads, int) else list(heads)
    selected, best = None, [float("-inf")] * len(heads)
    for epoch in sorted(history):
        accuracy = [history[epoch][h] for h in heads]
        best = [max(b, a) for b, a in zip(best, accuracy, strict=True)]
        if still_fits(accuracy, best, tolerance):
            selected = epoch
    return selected


class HeadFittingCheckpoints(L.Callback):
    """Saves the weights of the epochs `last_fitting_epoch` may select, per head.

    Args:
        dirpath: where the weights go (`epoch_NNN.ckpt`, weights only).
        tolerance: how far below its best held-out accuracy so far a head may fall at a selected
            epoch. The default, 0.05, is about two standard errors of the held-out accuracy of
            a head right on 19 rows in 20, on a 120-row held-out split: the noise of a head
            that still fits stays inside it, a head that has stopped fitting falls further.
    """

    def __init__(self, dirpath: str | Path, tolerance: float = 0.05):
        self.dirpath = Path(dirpath)
        self.tolerance = tolerance
        self.history: dict[int, list[float]] = {}
        # Where each kept epoch's weights are: a resumed run's earlier ones are in the folder of
        # the run it resumed, which it reads but never deletes from.
        self.saved: dict[int, Path] = {}

    def path(self, epoch: int) -> Path:
        if epoch not in self.saved:
            raise FileNotFoundError(f"the weights of epoch {epoch} were not kept")
        return self.saved[epoch]

    @property
    def last_epoch(self) -> int | None:
        return max(self.history, default=None)

    @property
    def num_heads(self) -> int:
        return len(self.history[self.last_epoch]) if self.history else 0

    def heads_read_by(self, hypothesis: int) -> list[int]:
        """A head reads itself; a mixed hypothesis (index past the heads) reads them all."""
        return [hypothesis] if hypothesis < self.num_heads else list(range(self.num_heads))

    def selected_epoch(self, hypothesis: int) -> int | None:
        """The epoch whose weights serve `hypothesis` (None before any selectable epoch)."""
        if not self.history:
            return None
        return last_fitting_epoch(self.history, self.heads_read_by(hypothesis), self.tolerance)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not pl_module.selection_ready():
            return
        names = (
            [f"val/acc_head{h}" for h in range(pl_module.num_heads)]
            if pl_module.num_heads > 1
            else ["val/acc"]
        )
        metrics = trainer.callback_metrics
        if not all(name in metrics for name in names):
            return  # no held-out split: nothing to select on
        epoch = trainer.current_epoch
        self.history[epoch] = [float(metrics[name]) for name in names]
        self.saved[epoch] = self.dirpath / f"epoch_{epoch:03d}.ckpt"
        trainer.save_checkpoint(self.saved[epoch], weights_only=True)
        self._drop_unselectable(trainer)

    def _drop_unselectable(self, trainer: L.Trainer) -> None:
        """Delete the weights no hypothesis can be selected at any more: a later epoch that fits
        a head stays selected for it whatever comes after (its best so far is fixed)."""
        # Each head alone, and every head together (the mixed hypotheses).
        keep = {self.selected_epoch(h) for h in range(self.num_heads + 1)}
        keep.add(self.last_epoch)
        for epoch in [e for e in self.saved if e not in keep]:
            path = self.saved.pop(epoch)
            # Rank 0 wrote the weights; another run's folder is left as it is.
            ours = path.parent.resolve() == self.dirpath.resolve()
            if trainer.is_global_zero and ours and path.exists():
                path.unlink()

    def state_dict(self) -> dict:
        saved = {epoch: str(path.resolve()) for epoch, path in self.saved.items()}
        return {"history": self.history, "tolerance": self.tolerance, "saved": saved}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = {int(e): list(a) for e, a in state_dict["history"].items()}
        self.saved = {int(e): Path(p) for e, p in state_dict.get("saved", {}).items()}
