"""With an answer key (generated sets): the submission's accuracy, for reading only."""

from __future__ import annotations

import logging

from hackrobust import dashboards
from hackrobust.predict import score_target
from hackrobust.stages.run import Run

log = logging.getLogger(__name__)


class ScoreAnswerKey:
    """Score the CSV's labels against the answer key, overall and per group (`target/final_*`),
    when the dataset has one. Nothing trains on or selects by these numbers."""

    def __call__(self, run: Run) -> Run:
        datamodule = run.datamodule
        if not datamodule.data.has_answer_key:
            return run
        scores = score_target(datamodule.to_class_index(run.submitted), datamodule)
        run.metrics |= scores
        if run.is_global_zero:
            dashboards.log_final_scores(run.trainer.loggers, scores)
        log.info(
            "Target accuracy (answer key, reading only): %.4f, worst group %.4f",
            scores["target/final_acc"],
            scores["target/final_worst_group_acc"],
        )
        return run
