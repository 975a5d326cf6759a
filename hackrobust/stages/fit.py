"""The method's training, by Lightning's Trainer."""

from __future__ import annotations

from hackrobust.stages.run import Run


class Fit:
    """`trainer.fit` (resumed from `ckpt_path` if given); the logged metrics join the run's."""

    def __init__(self, ckpt_path: str | None = None):
        self.ckpt_path = ckpt_path

    def __call__(self, run: Run) -> Run:
        run.trainer.fit(run.method, datamodule=run.datamodule, ckpt_path=self.ckpt_path)
        run.metrics |= {k: float(v) for k, v in run.trainer.callback_metrics.items()}
        return run
