"""What a run sends to W&B beyond Lightning's own logging: the verdict and the final scores.

Lightning's WandbLogger already carries the config and every logged metric (per-head and
per-group accuracies, `val/select`); the attribution maps go through their callback. Here: the
submit-or-abstain report as summary fields plus a table of the revealed labels, the final target
scores as summary fields plus a per-group table, and `wandb.finish()`, which a multirun needs
(or every job logs into the first job's run).
"""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.loggers import Logger, WandbLogger

REPORT_FIELDS = (
    "chosen_head",
    "labels_revealed",
    "estimated_target_accuracy",
    "default_score",
    "recommendation",
)


def _wandb_loggers(loggers: Sequence[Logger]) -> list[WandbLogger]:
    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def log_report(loggers: Sequence[Logger], report: dict) -> None:
    """The report's verdict as `report/*` summary fields; the revealed labels as a table."""
    for logger in _wandb_loggers(loggers):
        summary = {f"report/{field}": report[field] for field in REPORT_FIELDS}
        low, high = report["estimate_interval_90"]
        summary |= {"report/estimate_low": low, "report/estimate_high": high}
        logger.experiment.summary.update(summary)
        logger.log_table(
            key="report/revealed",
            columns=["datum_id", "label", "head_predictions", "information_gain"],
            data=[
                [q["datum_id"], q["label"], str(q["head_predictions"]), q["information_gain"]]
                for q in report["revealed"]
            ],
        )


def log_final_scores(loggers: Sequence[Logger], scores: dict[str, float]) -> None:
    """The submitted head's target scores (answer key, reading only) and a per-group table."""
    prefix = "target/final_group_acc/"
    for logger in _wandb_loggers(loggers):
        logger.experiment.summary.update(
            {k: v for k, v in scores.items() if not k.startswith(prefix)}
        )
        logger.log_table(
            key="target/final_groups",
            columns=["group", "accuracy"],
            data=[[k.removeprefix(prefix), v] for k, v in scores.items() if k.startswith(prefix)],
        )


def finish(loggers: Sequence[Logger]) -> None:
    """Close the W&B run (call it in a `finally`)."""
    if _wandb_loggers(loggers):
        import wandb

        wandb.finish()
