"""The active-query callback: after fit, reveal a few target labels and choose the head.

It runs when the predict stage starts (the best checkpoint is loaded by then), computes each
head's target probabilities on every rank, queries on global rank 0 only, and broadcasts the
choice. The labels it used live in the callback's `state_dict`, which `train` writes into the
checkpoint the run keeps (`record_in_checkpoint`): a run resumed from it (`ckpt_path=`) chooses
again on its own weights from those labels, asking for none (they count against the budget; a
checkpoint of another exercise or answer key is not taken for evidence). The budget's truth is
the revealer's ledger on disk, so a re-run from scratch re-uses its labels too. With the choice
it keeps what the report's accuracy estimate needs from the held-out split: each head's accuracy
and the chosen head's confidence on each held-out row (the target's come from the predictions).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from hackrobust.methods.inference import target_probabilities, trunk_features
from hackrobust.query.report import confidence
from hackrobust.query.selection import choose_head
from hackrobust.reveal import Revealer
from hackrobust.submission import save_atomically
from hackrobust.utils.errors import UserError
from hackrobust.utils.timing import TimedCallback

log = logging.getLogger(__name__)


def names_of_hypotheses(module: L.LightningModule, count: int, label_values) -> list[str]:
    """The method's name for each of the `count` hypotheses ("head 0", ... by default)."""
    names = getattr(module, "hypothesis_names", None)
    return names(label_values) if names else [f"head {h}" for h in range(count)]


def holdout_accuracy(holdout_probs: np.ndarray, labels: torch.Tensor) -> dict:
    """Each hypothesis's accuracy on the held-out labeled rows (None each without any), and how
    many rows there are."""
    hits = holdout_probs.argmax(-1) == labels.numpy()[:, None]
    if not len(hits):
        return {"holdout_accuracy": [None] * hits.shape[1], "holdout_size": 0}
    return {"holdout_accuracy": hits.mean(axis=0).round(6).tolist(), "holdout_size": len(hits)}


def unchecked_choice(module: L.LightningModule, datamodule) -> dict:
    """What the report needs when no label was revealed (`query=none`): the head the CSV holds,
    no evidence for it, and the held-out accuracies."""
    holdout = datamodule.holdout_set.tensors
    probs = target_probabilities(module, holdout["x"])
    hypotheses = probs.shape[1]
    return {
        "head": int(getattr(module, "chosen_head", 0)),
        "posterior": [round(1 / hypotheses, 6)] * hypotheses,
        "queries": [],
        "hypotheses": names_of_hypotheses(module, hypotheses, datamodule.label_values),
    } | holdout_accuracy(probs, holdout["y"])


class ActiveQuery(TimedCallback, L.Callback):
    """Chooses `chosen_head` of the module from at most `budget` revealed target labels.

    Args:
        revealer: a factory (Hydra partial) of a `Revealer`; it receives `dataset_dir` when it
            takes one (the offline oracle reads the dataset's answer key from there).
        stop_at: stop querying once one head has this posterior probability (1: spend the budget).
        error_rate: how often the right head may still be wrong on a revealed row.
        verify_after: once a head has this posterior and the heads are nested, the remaining
            labels go to random rows where the heads disagree (`hackrobust.query.selection`).
        atc_score: estimate the report's target accuracy by ATC on this confidence score
            (`max_probability` or `negative_entropy`, see `hackrobust.query.report`); None
            (default) takes the held-out accuracy for it. ATC errs low when the held-out split
            is perfect (its threshold is then the least sure held-out row).
    """

    timing_name = "query"

    def __init__(
        self,
        revealer: Callable[..., Revealer],
        budget: int = 5,
        stop_at: float = 1.0,
        error_rate: float = 0.05,
        atc_score: str | None = None,
        verify_after: float = 0.9,
    ):
        self.revealer_factory = revealer
        self.budget = budget
        self.stop_at = stop_at
        self.error_rate = error_rate
        self.atc_score = atc_score
        self.verify_after = verify_after
        self.result: dict | None = None  # this fit's choice; a resumed fit chooses again
        self.revealed: dict[int, int] = {}  # every label the run has used, in label values
        self.source: str | None = None  # the fingerprint of the ledger they came from

    def _revealer(self, datamodule) -> Revealer:
        kwargs = {}
        if "dataset_dir" in inspect.signature(self.revealer_factory).parameters:
            kwargs["dataset_dir"] = datamodule.folder
        return self.revealer_factory(**kwargs)

    def check(self, datamodule) -> None:
        """Before training: build the revealer, which checks the budget, the credentials and
        the exercise id, and, where it can, that its server answers."""
        try:
            revealer = self._revealer(datamodule)
        except ValueError as error:
            raise UserError(f"query settings: {error}") from None
        if hasattr(revealer, "check_server"):
            revealer.check_server()

    def choose_again(self) -> None:
        """Forget this fit's choice: the next prediction chooses again, on the weights it
        predicts with, from the labels already revealed (the ledger returns them at no cost)."""
        self.result = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.result is None:
            with self.timed():
                self._choose(trainer, pl_module)
        pl_module.chosen_head.fill_(self.result["head"])

    def _choose(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Every rank scores the heads; rank 0 reveals labels and chooses; all get its result."""
        datamodule = trainer.datamodule
        probs = target_probabilities(pl_module, datamodule.target_set.tensors["x"])
        holdout = datamodule.holdout_set.tensors
        holdout_probs = target_probabilities(pl_module, holdout["x"])
        result = None
        if trainer.is_global_zero:
            features = trunk_features(pl_module, datamodule.target_set.tensors["x"])
            result = self._query(datamodule, probs, features)
            result["hypotheses"] = names_of_hypotheses(
                pl_module, probs.shape[1], datamodule.label_values
            )
            result |= holdout_accuracy(holdout_probs, holdout["y"])
            if self.atc_score is not None:
                # One number per held-out row of the chosen head (small), not target probs.
                scores = confidence(holdout_probs[:, result["head"]], self.atc_score)
                result["atc_score"] = self.atc_score
                result["holdout_scores"] = scores.tolist()  # exact: ties must stay ties
        self.result = trainer.strategy.broadcast(result, src=0)

    def _query(self, datamodule, probs: np.ndarray, features: np.ndarray) -> dict:
        revealer = self._revealer(datamodule)
        label_values = datamodule.label_values

        def reveal(datum_id: int) -> int:
            return int(datamodule.to_class_index(np.array([revealer.reveal(datum_id)]))[0])

        revealer.complete_pending()  # a label an earlier run paid for is evidence too
        source = revealer.ledger.fingerprint
        if self.revealed and self.source != source:
            log.warning(
                "The checkpoint's %d revealed labels come from another exercise or answer key: "
                "not used", len(self.revealed),
            )  # fmt: skip
            self.revealed = {}
        self.source = source
        known = {
            d: int(datamodule.to_class_index(np.array([label]))[0])
            for d, label in (self.revealed | revealer.revealed).items()
        }
        budget = max(0, min(self.budget - len(known), revealer.remaining))
        choice = choose_head(
            probs,
            reveal,
            budget,
            known,
            self.stop_at,
            self.error_rate,
            features=features,
            verify_after=self.verify_after,
        )
        result = choice.to_dict()
        for query in result["queries"]:
            query["label"] = int(label_values[query["label"]])
            query["head_predictions"] = label_values[probs[query["datum_id"]].argmax(-1)].tolist()
            self.revealed[query["datum_id"]] = query["label"]
        for q in result["queries"]:
            log.info(
                "Query datum %d: label %d, heads predicted %s (expected gain %.3f nats)",
                q["datum_id"], q["label"], q["head_predictions"], q["information_gain"],
            )  # fmt: skip
        log.info("Chose head %d (posterior %s)", choice.head, choice.posterior)
        return result

    def state_dict(self) -> dict:
        return {"revealed": dict(self.revealed), "source": self.source}

    def load_state_dict(self, state_dict: dict) -> None:
        # Not the choice itself: a resumed fit may train on, and the held-out numbers with it.
        self.revealed = {int(d): int(v) for d, v in state_dict.get("revealed", {}).items()}
        self.source = state_dict.get("source")

    def record_in_checkpoint(self, path: str | os.PathLike) -> None:
        """Write this callback's state into the Lightning checkpoint at `path`, atomically and
        durably: the query runs after fit, when the checkpoints are already written."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint.setdefault("callbacks", {})[self.state_key] = self.state_dict()
        save_atomically(checkpoint, path, overwrite=True)
