"""The predict stage: target-set probabilities in `X_val` order, then the submission files."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch

from hackrobust.data.datamodule import HackathonDataModule
from hackrobust.methods.base import MAX_NAMED_GROUPS
from hackrobust.submission import save_predictions, write_submission

log = logging.getLogger(__name__)


def predict_target(
    trainer: L.Trainer, method: L.LightningModule, datamodule: HackathonDataModule, ckpt_path=None
) -> np.ndarray:
    """Probabilities (N_target, heads, classes) in target row order, gathered over all ranks.

    Rows are placed by the `idx` each batch carries, so sampler order and the padding a
    distributed sampler adds never shift a label onto the wrong row.
    """
    outputs = trainer.predict(method, datamodule=datamodule, ckpt_path=ckpt_path)
    idx = torch.cat([o["idx"] for o in outputs])
    probs = torch.cat([o["probs"] for o in outputs])
    if trainer.world_size > 1:
        idx, probs = _gather_uneven(trainer, idx, probs)
    n_target = len(datamodule.target_set)
    placed = np.full((n_target, *probs.shape[1:]), np.nan, dtype=np.float32)
    placed[idx.cpu().numpy()] = probs.cpu().numpy()
    if np.isnan(placed).any():
        missing = np.flatnonzero(np.isnan(placed).any(axis=(1, 2)))
        raise RuntimeError(
            f"the predict stage missed {len(missing)} target rows, e.g. {missing[:5]}"
        )
    return placed


def _gather_uneven(trainer: L.Trainer, idx: torch.Tensor, probs: torch.Tensor):
    """All-gather rows from every rank; predict samplers do not pad, so shards differ in length."""
    longest = int(trainer.strategy.all_gather(torch.tensor(len(idx), device=idx.device)).max())
    pad = longest - len(idx)
    idx = torch.cat([idx, idx.new_full((pad,), -1)])
    probs = torch.cat([probs, probs.new_zeros((pad, *probs.shape[1:]))])
    idx = trainer.strategy.all_gather(idx).flatten()
    probs = trainer.strategy.all_gather(probs).flatten(0, 1)
    keep = idx >= 0
    return idx[keep], probs[keep]


def write_outputs(
    labels: np.ndarray,
    probs: np.ndarray,
    label_values: np.ndarray,
    head: int,
    submission_path: str | Path,
    predictions_path: str | Path | None,
    overwrite: bool,
) -> Path:
    """Write the CSV (`labels`, label values) and the per-head probabilities, `head` chosen."""
    path = write_submission(labels, submission_path, label_values=label_values, overwrite=overwrite)
    if predictions_path:
        save_predictions(
            predictions_path, probs, label_values, overwrite=overwrite, head=np.int64(head)
        )
    log.info("Wrote %d labels (head %d) to %s", len(labels), head, path)
    return path


def with_revealed_labels(
    labels: np.ndarray, label_values: np.ndarray, revealed: dict[int, int]
) -> np.ndarray:
    """A copy of `labels` (label values, one per target row) with the revealed label on each
    row of `revealed` (datum_id: label value): it is known."""
    labels = labels.copy()
    for datum_id, label in revealed.items():
        if label not in label_values:
            raise ValueError(
                f"revealed label {label!r} of target row {datum_id} is not one of the dataset's "
                f"label values {label_values.tolist()}: the ledger is for another dataset?"
            )
        labels[datum_id] = label
    return labels


def score_target(predicted: np.ndarray, datamodule: HackathonDataModule) -> dict[str, float]:
    """Accuracy of predicted class indices against the answer key, overall and per group.

    For reading only: nothing trains on or selects by these numbers.
    """
    truth = datamodule.to_class_index(datamodule.data.y_target)
    groups = datamodule.target_set.tensors["group"].numpy()
    hits = predicted == truth
    scores = {"target/final_acc": float(hits.mean())}
    per_group = {
        name: float(hits[groups == g].mean())
        for g, name in enumerate(datamodule.group_names)
        if (groups == g).any()
    }
    if len(per_group) <= MAX_NAMED_GROUPS:  # not thousands of species, one entry each
        scores |= {f"target/final_group_acc/{name}": acc for name, acc in per_group.items()}
    scores["target/final_worst_group_acc"] = min(per_group.values(), default=float("nan"))
    return scores
