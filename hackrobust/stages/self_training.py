"""After the head is chosen: a student learns its rule from pseudo-labels
(`hackrobust.training.self_training`)."""

from __future__ import annotations

import numpy as np

from hackrobust.predict import score_target
from hackrobust.stages.run import Run
from hackrobust.training.self_training import (
    SelfTrainingResult,
    SelfTrainingSettings,
    StudentRecipe,
    self_train,
)


class SelfTraining:
    """Train students on the chosen head's pseudo-labels, with the run's model, optimizer,
    schedule and trainer settings, from the pretrained trunk if the run has one. A student that
    passes its checks replaces the head in the probabilities and the choice. Settings:
    `hackrobust.training.self_training.SelfTrainingSettings`."""

    def __init__(self, **settings):
        SelfTrainingSettings(**settings)  # refused here, before any training
        self.settings = settings

    def __call__(self, run: Run) -> Run:
        recipe = StudentRecipe(
            model=run.new_model,
            optimizer=run.method.optimizer_factory,
            scheduler=run.method.scheduler_factory,
            trainer=run.new_trainer,
        )
        result = self_train(
            recipe, run.datamodule, run.method, run.probs, run.choice,
            trunk_state=run.trunk_state, **self.settings,
        )  # fmt: skip
        run.probs, run.choice = result.probs, result.choice
        if result.summary.get("holdout_accuracy") is not None:
            run.metrics["self_training/holdout_acc"] = result.summary["holdout_accuracy"]
        run.metrics["self_training/used"] = float(result.summary["used"])
        run.metrics["self_training/skipped"] = float("skipped_because" in result.summary)
        run.report_sections["self_training"] = result.summary
        if run.datamodule.data.has_answer_key:
            run.metrics |= answer_key_scores(result, run.datamodule)
        return run


def answer_key_scores(result: SelfTrainingResult, datamodule) -> dict[str, float]:
    """For reading only: the student's and the chosen head's target accuracy, whichever was
    used, and the student's on the target rows it was taught the head's label for and on the
    others, which it had to work out; and the first student's after each epoch (0: before any)."""
    scores = {
        f"self_training/{name}": score_target(probs.argmax(-1), datamodule)["target/final_acc"]
        for name, probs in (
            ("student_acc", result.student_probs),
            ("chosen_head_acc", result.head_probs),
        )
    }
    truth = datamodule.to_class_index(datamodule.data.y_target)
    hits = result.student_probs.argmax(-1) == truth
    for name, rows in (("taught", result.taught), ("untaught", ~result.taught)):
        if rows.any():
            scores[f"self_training/student_acc_{name}"] = float(np.mean(hits[rows]))
    for epoch, classes in enumerate(() if result.epoch_classes is None else result.epoch_classes):
        scores[f"self_training/student_acc_epoch/{epoch}"] = float(np.mean(classes == truth))
    return scores
