"""Submit or abstain: the report beside the CSV, and the verdict line (`hackrobust.query.report`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hackrobust import dashboards
from hackrobust.data.datamodule import HackathonDataModule
from hackrobust.query.callback import unchecked_choice
from hackrobust.query.report import build_report, summary_line, write_report
from hackrobust.stages.run import Run
from hackrobust.submission import check_new_output
from hackrobust.utils.console import announce
from hackrobust.utils.errors import UserError

log = logging.getLogger(__name__)


class Report:
    """Estimate the CSV's accuracy against the default score and write the verdict to
    `<submission>.report.json`, with the run's seconds per stage so far. Hackathon datasets only.

    Args:
        submission_path: the CSV the report goes beside.
        default_score: the score of not submitting; None: the dataset's rule for `exercise_id`.
        exercise_id: the exercise the run reveals labels from (`query=api`), if any.
        class_balance_bound: cap the estimate by the labeled set's class shares.
        overwrite: replace an existing report.
    """

    def __init__(
        self,
        submission_path: str,
        default_score: float | None = None,
        exercise_id: int | str | None = None,
        class_balance_bound: bool = True,
        overwrite: bool = False,
    ):
        self.csv = Path(submission_path)
        self.path = self.csv.with_suffix(".report.json")
        self.default_score, self.exercise_id = default_score, exercise_id
        self.class_balance_bound, self.overwrite = class_balance_bound, overwrite

    def check(self) -> None:
        """Refuse, before training, an existing report (unless `overwrite`), one that cannot be
        written, and an exercise id that is no integer."""
        check_new_output(self.path, "the report", self.overwrite)
        if self.exercise_id is not None:
            try:
                int(self.exercise_id)
            except ValueError:
                raise UserError(
                    f"query.exercise_id must be an integer (the exercise's number), got "
                    f"{self.exercise_id!r}"
                ) from None

    def __call__(self, run: Run) -> Run:
        if not (run.is_global_zero and isinstance(run.datamodule, HackathonDataModule)):
            return run
        choice = run.choice if run.choice is not None else self._unchecked(run)
        report = build_report(
            choice,
            run.probs,
            choice["holdout_accuracy"],
            choice["holdout_size"],
            run.datamodule.label_values,
            self._default_score(run.datamodule),
            labeled_class_shares(run.datamodule) if self.class_balance_bound else None,
        )
        report |= run.report_sections
        report["timings"] = {name: round(s, 3) for name, s in run.timings.items()}
        write_report(report, self.path, self.overwrite)
        log.info("Report written to %s", self.path)
        # The verdict and where the CSV is, in the log and on the console.
        announce(log, f"{summary_line(report)} CSV: {self.csv.resolve()}")
        dashboards.log_report(run.trainer.loggers, report)
        return run

    def _default_score(self, datamodule) -> float:
        if self.default_score is not None:  # 0 included
            return float(self.default_score)
        return datamodule.default_score_for(self.exercise_id)

    @staticmethod
    def _unchecked(run: Run) -> dict:
        if run.probs.shape[1] > 1:
            log.warning(
                "%d hypotheses and no query: the CSV holds head %d, unchecked; "
                "query=api or query=oracle reveals labels to choose",
                run.probs.shape[1], run.head,
            )  # fmt: skip
        return unchecked_choice(run.method, run.datamodule)


def labeled_class_shares(datamodule) -> np.ndarray:
    """Each class's share of the labeled rows, in `label_values` order."""
    classes = datamodule.to_class_index(np.asarray(datamodule.data.y_labeled))
    return np.bincount(classes, minlength=len(datamodule.label_values)) / len(classes)
