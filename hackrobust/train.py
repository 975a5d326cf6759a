"""`python -m hackrobust.train`: compose the config, train, predict the target set, write the CSV.

`train(cfg)` is a plain function (tests and notebooks call it); `main` is the thin Hydra wrapper
that returns the optimized metric so sweepers can use it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

from hackrobust import dashboards
from hackrobust.allocator import keep_freed_memory
from hackrobust.config import CONFIG_DIR, print_config
from hackrobust.data.datamodule import HackathonDataModule
from hackrobust.head_fitting import HeadFittingCheckpoints
from hackrobust.instantiate import instantiate_entries
from hackrobust.predict import predict_target, score_target, with_revealed_labels, write_outputs
from hackrobust.pretrain import pretrain_trunk, trunk_state
from hackrobust.query import ActiveQuery
from hackrobust.query.callback import unchecked_choice
from hackrobust.query.report import build_report, summary_line, write_report
from hackrobust.self_training import self_train
from hackrobust.submission import SubmissionExistsError

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict]:
    """Fit `cfg.method` on `cfg.dataset`, then write the submission. Returns (metrics, objects)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("host_memory_cache"):
        keep_freed_memory(cfg.host_memory_cache)
    submission = cfg.submission
    if Path(submission.path).exists() and not submission.overwrite:
        # Fail before training: an existing submission is never replaced silently.
        raise SubmissionExistsError(submission.path)

    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    log.info(
        "Dataset: input %s, label values %s, %d labeled / %d unlabeled / %d target",
        datamodule.input_shape,
        datamodule.label_values.tolist(),
        len(datamodule.data.y_labeled),
        len(datamodule.data.x_unlabeled),
        len(datamodule.data.x_target),
    )
    method = hydra.utils.instantiate(
        cfg.method,
        model=hydra.utils.instantiate(cfg.model),
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        group_names=datamodule.group_names if datamodule.data.has_answer_key else None,
    )
    datamodule.with_unlabeled = method.uses_unlabeled
    pretrained, pretrained_trunk = None, None
    if cfg.get("pretrain"):
        pretrained = pretrain_trunk(cfg, datamodule, method.net, **cfg.pretrain)
        pretrained_trunk = trunk_state(method.net)

    callbacks = instantiate_entries(cfg.get("callbacks"))
    if cfg.get("query") and cfg.query.get("callback"):
        callbacks.append(hydra.utils.instantiate(cfg.query.callback))
    loggers = instantiate_entries(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        trainer.fit(method, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if pretrained:
            metrics["pretrain/loss"] = pretrained["loss"]
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        probs = predict_target(trainer, method, datamodule, ckpt_path=best or None)
        query = next((c for c in trainer.callbacks if isinstance(c, ActiveQuery)), None)
        fitting = next(
            (c for c in trainer.callbacks if isinstance(c, HeadFittingCheckpoints)), None
        )
        if fitting is not None:
            probs, epoch = predict_at_fitting_epoch(
                trainer, method, datamodule, fitting, query, probs
            )
            if epoch is not None:
                metrics["selection/epoch"] = float(epoch)
        head = int(method.chosen_head)
        choice = query.result if query is not None else None
        if choice is not None and is_within(best, cfg.paths.output_dir) and trainer.is_global_zero:
            query.record_in_checkpoint(best)  # a run resumed from it does not ask again
        self_training = None
        if cfg.get("self_training"):
            self_training = self_train(
                cfg,
                datamodule,
                method,
                probs,
                choice,
                **cfg.self_training,
                trunk_state=pretrained_trunk,
            )
            probs, choice = self_training.probs, self_training.choice
            metrics["self_training/holdout_acc"] = self_training.summary["holdout_accuracy"]
            metrics["self_training/used"] = float(self_training.summary["used"])
        # The revealed rows are known: the CSV carries their labels whatever the head predicts.
        revealed = {q["datum_id"]: q["label"] for q in (choice or {}).get("queries", [])}
        model_labels = datamodule.label_values[probs[:, head].argmax(-1)]
        submitted = with_revealed_labels(model_labels, datamodule.label_values, revealed)
        if trainer.is_global_zero:
            write_outputs(
                submitted,
                probs,
                datamodule.label_values,
                head,
                submission.path,
                submission.get("predictions_path"),
                submission.overwrite,
            )
        if trainer.is_global_zero and has_report(datamodule):
            if choice is None:
                choice = unchecked_choice(method, datamodule)
                if probs.shape[1] > 1:
                    log.warning(
                        "%d hypotheses and no query: the CSV holds head %d, unchecked; "
                        "query=api or query=oracle reveals labels to choose",
                        probs.shape[1], head,
                    )  # fmt: skip
            report = build_report(
                choice,
                probs,
                choice["holdout_accuracy"],
                choice["holdout_size"],
                datamodule.label_values,
                default_score(submission, datamodule, cfg),
                labeled_class_shares(datamodule)
                if submission.get("class_balance_bound", True)
                else None,
            )
            report["revealed_rows_relabeled"] = int((submitted != model_labels).sum())
            if self_training is not None:
                report["self_training"] = self_training.summary
            write_report(
                report, Path(submission.path).with_suffix(".report.json"), submission.overwrite
            )
            print(summary_line(report))  # the verdict, on the console whatever the logging
            dashboards.log_report(trainer.loggers, report)
        if datamodule.data.has_answer_key:
            final_scores = score_target(datamodule.to_class_index(submitted), datamodule)
            metrics |= final_scores
            if self_training is not None:  # the student's and the head's, whichever was used
                for name, predicted in (
                    ("student_acc", self_training.student_probs.argmax(-1)),
                    ("chosen_head_acc", self_training.head_probs.argmax(-1)),
                ):
                    accuracy = score_target(predicted, datamodule)["target/final_acc"]
                    metrics[f"self_training/{name}"] = accuracy
                # The student's accuracy on the target rows it was taught the head's label for,
                # and on the others, which it had to work out.
                hits = self_training.student_probs.argmax(-1) == datamodule.to_class_index(
                    datamodule.data.y_target
                )
                for name, rows in (
                    ("taught", self_training.taught),
                    ("untaught", ~self_training.taught),
                ):
                    if rows.any():
                        metrics[f"self_training/student_acc_{name}"] = float(hits[rows].mean())
            if trainer.is_global_zero:
                dashboards.log_final_scores(trainer.loggers, final_scores)
            log.info(
                "Target accuracy (answer key, reading only): %.4f, worst group %.4f",
                metrics["target/final_acc"],
                metrics["target/final_worst_group_acc"],
            )
        if trainer.is_global_zero:
            Path(cfg.paths.output_dir, "metrics.json").write_text(
                json.dumps(metrics, indent=2, sort_keys=True) + "\n"
            )
    finally:
        dashboards.finish(trainer.loggers)

    objects = {"cfg": cfg, "datamodule": datamodule, "method": method, "trainer": trainer}
    return metrics, objects | {"probs": probs}


def predict_at_fitting_epoch(
    trainer, method, datamodule, fitting, query, probs
) -> tuple[np.ndarray, int | None]:
    """Predict again with the chosen head's last fitting epoch (`hackrobust.head_fitting`),
    unless that is the last epoch; the query chooses the head again on those weights, from the
    labels already revealed (the ledger returns them at no cost). Returns the probabilities
    and the epoch they come from."""
    head = int(method.chosen_head)
    epoch = fitting.selected_epoch(head)
    if epoch is None or epoch == fitting.last_epoch:
        return probs, fitting.last_epoch
    log.info("Head %d: predicting with epoch %d, its last fitting one", head, epoch)
    if query is not None:
        query.result = None
    probs = predict_target(trainer, method, datamodule, ckpt_path=fitting.path(epoch))
    if int(method.chosen_head) != head:
        log.warning(
            "At epoch %d the revealed labels chose head %d (head %d at the last epoch)",
            epoch, int(method.chosen_head), head,
        )  # fmt: skip
    return probs, epoch


def is_within(path: str, folder: str) -> bool:
    """`path` names a file inside `folder` (a resumed run's best may be another run's)."""
    return bool(path) and Path(path).resolve().is_relative_to(Path(folder).resolve())


def has_report(datamodule) -> bool:
    """The submit-or-abstain report is the hackathon's: its datamodule holds the data in memory."""
    return isinstance(datamodule, HackathonDataModule)


def default_score(submission: DictConfig, datamodule, cfg: DictConfig) -> float:
    """`submission.default_score` if set (0 included), else the dataset's rule for the exercise
    the run reveals labels from (`query=api`), if any."""
    if submission.get("default_score") is not None:
        return float(submission.default_score)
    return datamodule.default_score_for(OmegaConf.select(cfg, "query.exercise_id", default=None))


def labeled_class_shares(datamodule) -> np.ndarray:
    """Each class's share of the labeled rows, in `label_values` order."""
    classes = datamodule.to_class_index(np.asarray(datamodule.data.y_labeled))
    return np.bincount(classes, minlength=len(datamodule.label_values)) / len(classes)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    print_config(cfg)
    metrics, _ = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} was not logged; logged: {sorted(metrics)}")
    value = metrics[name]
    return value if math.isfinite(value) else None


if __name__ == "__main__":
    main()
