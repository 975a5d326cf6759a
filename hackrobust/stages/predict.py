"""The target set's probabilities; the active query (a callback) chooses the head first."""

from __future__ import annotations

from pathlib import Path

from hackrobust.predict import predict_target
from hackrobust.reveal import RevealError
from hackrobust.stages.run import Run
from hackrobust.utils.config import resume_command


class PredictTarget:
    """Predict every hypothesis on the target rows with the fit's best weights (the last
    without a checkpoint callback). The query callback, when the run has one, reveals labels
    and sets `chosen_head` as prediction starts; its result becomes `run.choice`."""

    def __call__(self, run: Run) -> Run:
        checkpoint = run.trainer.checkpoint_callback
        run.checkpoint = checkpoint.best_model_path if checkpoint else ""
        try:
            run.probs = predict_target(
                run.trainer, run.method, run.datamodule, ckpt_path=run.checkpoint or None
            )
        except RevealError as error:  # wrong credentials, a spent budget: training is kept
            last = checkpoint.last_model_path if checkpoint else ""
            if not (last and Path(last).is_file()):
                raise
            raise RevealError(
                f"{error}. The trained model is kept: once that is fixed, finish without "
                f"training again with `{resume_command(last)}`"
            ) from error
        query = run.callbacks.get("query")
        run.choice = query.result if query is not None else None
        return run


class RememberRevealedLabels:
    """Write the revealed labels into the run's kept checkpoint, so a run resumed from it
    (`ckpt_path=`) chooses again from them without asking (`ActiveQuery.record_in_checkpoint`).
    A resumed run's best checkpoint may be the earlier run's: that one is left as it is."""

    def __call__(self, run: Run) -> Run:
        query = run.callbacks.get("query")
        if query is None or run.choice is None or not run.is_global_zero:
            return run
        if is_within(run.checkpoint, run.output_dir):
            query.record_in_checkpoint(run.checkpoint)
        return run


def is_within(path: str | None, folder: str | Path) -> bool:
    """`path` names a file inside `folder`."""
    return bool(path) and Path(path).resolve().is_relative_to(Path(folder).resolve())
