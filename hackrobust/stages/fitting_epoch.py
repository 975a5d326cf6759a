"""Predict again with the chosen head's last epoch that still fits (`hackrobust.training.head_fitting`)."""

from __future__ import annotations

import logging

from hackrobust.predict import predict_target
from hackrobust.stages.run import Run

log = logging.getLogger(__name__)


class FittingEpoch:
    """With the run's `HeadFittingCheckpoints` callback (named `callback`), predict the target
    with the weights of the chosen head's selected epoch, unless that is the last epoch. The
    query then chooses again on those weights, from the labels already revealed (the ledger
    returns them at no cost). The epoch used is logged as `selection/epoch`."""

    def __init__(self, callback: str = "head_fitting"):
        self.callback = callback

    def __call__(self, run: Run) -> Run:
        fitting = run.callbacks.get(self.callback)
        if fitting is None:
            return run
        head, epoch = run.head, fitting.selected_epoch(run.head)
        if epoch is None or epoch == fitting.last_epoch:
            epoch = fitting.last_epoch
        else:
            self._predict_at(run, fitting.path(epoch), epoch, head)
        if epoch is not None:
            run.metrics["selection/epoch"] = float(epoch)
        return run

    @staticmethod
    def _predict_at(run: Run, weights, epoch: int, head: int) -> None:
        log.info("Head %d: predicting with epoch %d, its last fitting one", head, epoch)
        query = run.callbacks.get("query")
        if query is not None:
            query.choose_again()
        run.probs = predict_target(run.trainer, run.method, run.datamodule, ckpt_path=weights)
        run.choice = query.result if query is not None else None
        if run.head != head:
            log.warning(
                "At epoch %d the revealed labels chose head %d (head %d at the last epoch)",
                epoch, run.head, head,
            )  # fmt: skip
