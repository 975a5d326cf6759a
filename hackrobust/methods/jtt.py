"""JTT (Just Train Twice): upweight the training rows an ERM model got wrong, then train again.

Liu, Haghgoo, Chen, Raghunathan, Koh, Sagawa, Liang and Finn, "Just Train Twice: Improving
Group Robustness without Training Group Information", ICML 2021; official code
github.com/anniesch/jtt (`generate_downstream.py`, `process_training.py`). Within one fit:

1. epochs [0, T): ERM (the identification model), T = `identification_epochs`;
2. at the start of epoch T: the error set = training rows the model misclassifies (eval mode,
   one unshuffled pass over the training rows without augmentation, on every rank); the
   network is reset to its weights at fit start and the optimizer's state cleared;
3. epochs [T, max_epochs): cross-entropy with weight `upweight` (lambda_up) on the error set.

Defaults: T 1 and lambda_up 50, their CelebA command (`--final_epoch 1`, `JTT_upweight_50`), the
setting closest to short runs of a pretrained network here; their grid is lambda_up in
{20, 50, 100} and Waterbirds used T 60, lambda_up 100. The official code upsamples: each error
row is repeated lambda_up times. Here rows are weighted instead, and the weighted sum is divided
by B x the training set's mean weight, so a step's gradient has the scale of upsampling in
expectation (the epoch is not made longer). A scheduler runs over the whole fit, not once per
stage. The weights at fit start are copied in `setup("fit")`, before a resumed run restores its
checkpoint, so with a seed a resume resets to the same weights; the error set is a buffer, so
a run resumed after T keeps it. Only the second stage may be selected (`selection_ready`).

`identification_folds` k (null by default) is for a backbone that already saw the training
images, whose in-sample errors are then near empty: at T, the error set is instead the rows a
linear probe (sklearn logistic regression on the standardised features of the identification
model, projected on their top 128 principal components) misclassifies when trained on the
other k - 1 folds. This is a cheap stand-in for k cross-fitted ERM copies, not JTT as
published: it stops the last layer from memorising a row, not the trunk.
"""

from __future__ import annotations

import numpy as np
import torch

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.groups import (
    every_row_loader,
    fit_datamodule,
    per_example_cross_entropy,
    resize_buffers,
    training_rows_unaugmented,
)


def cross_fitted_errors(
    features: np.ndarray, y: np.ndarray, folds: int, seed: int = 0, max_dim: int = 128
) -> np.ndarray:
    """Rows a logistic regression trained without their fold misclassifies: (N,) bool.

    The probe reads the standardised features' top `max_dim` principal components (fitted on
    the other folds): on 2048-d ResNet features a full-width probe takes minutes per fold on a
    CPU, the projection seconds.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    wrong = np.zeros(len(y), dtype=bool)
    for k in range(folds):
        held, fit = fold == k, fold != k
        if not held.any():
            continue
        classes = np.unique(y[fit])
        if len(classes) == 1:
            predicted = np.full(held.sum(), classes[0])
        else:
            steps = [StandardScaler()]
            if features.shape[1] > max_dim:
                steps.append(PCA(max_dim, random_state=seed))
            probe = make_pipeline(*steps, LogisticRegression(max_iter=1000))
            predicted = probe.fit(features[fit], y[fit]).predict(features[held])
        wrong[held] = predicted != y[held]
    return wrong


class JTT(BaseMethod):
    """ERM for T epochs, then ERM again from the start with the first model's errors upweighted."""

    def __init__(
        self,
        *args,
        identification_epochs: int = 1,
        upweight: float = 50.0,
        identification_folds: int | None = None,
        **kwargs,
    ):
        if identification_epochs < 1:
            raise ValueError(
                f"identification_epochs must be at least 1, got {identification_epochs}"
            )
        if upweight < 1:
            raise ValueError(f"upweight must be at least 1, got {upweight}")
        if identification_folds is not None and identification_folds < 2:
            raise ValueError(f"identification_folds must be at least 2, got {identification_folds}")
        super().__init__(*args, **kwargs)
        self.identification_epochs = identification_epochs
        self.upweight = upweight
        self.identification_folds = identification_folds
        # error_set[idx]: whether training row idx is upweighted; empty until identified.
        self.register_buffer("error_set", torch.empty(0, dtype=torch.bool))
        self.register_buffer("mean_weight", torch.tensor(1.0))
        self.initial_state: dict[str, torch.Tensor] | None = None

    @property
    def identified(self) -> bool:
        return self.error_set.numel() > 0

    def selection_ready(self) -> bool:
        """Only the upweighted model may be selected, not the identification one."""
        return self.identified

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_buffers(self, state_dict, prefix, ("error_set",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and 0 <= max_epochs <= self.identification_epochs:
            raise ValueError(
                f"JTT identifies errors after identification_epochs={self.identification_epochs}"
                f" epochs, then trains again: trainer.max_epochs must exceed it, got {max_epochs}"
            )
        fit_datamodule(self, "JTT").train_set  # noqa: B018 - fail now when there is none
        self.initial_state = {
            k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()
        }

    def on_train_epoch_start(self) -> None:
        if self.current_epoch < self.identification_epochs or self.identified:
            return
        if self.initial_state is None:
            raise RuntimeError("JTT: no copy of the initial weights (setup('fit') was not run)")
        idx, wrong = self.training_errors(fit_datamodule(self, "JTT"))
        error_set = torch.zeros(int(idx.max()) + 1, dtype=torch.bool)
        error_set[idx] = wrong
        self.error_set = error_set.to(self.device)
        self.mean_weight = torch.tensor(
            1 + (self.upweight - 1) * wrong.float().mean().item(), device=self.device
        )
        self.net.load_state_dict(self.initial_state)
        for optimizer in self.trainer.optimizers:
            optimizer.state.clear()
        self.log("train/error_set_fraction", wrong.float().mean())

    @torch.no_grad()
    def training_errors(self, datamodule) -> tuple[torch.Tensor, torch.Tensor]:
        """(idx, whether the model misclassifies it) for every training row, on the CPU.

        In eval mode with the chosen head; `identification_folds` swaps in the cross-fitted
        probe on the features.
        """
        was_training = self.net.training
        self.net.eval()
        head = int(self.chosen_head)
        idx, y, outputs = [], [], []
        try:
            rows = training_rows_unaugmented(datamodule)
            for batch in every_row_loader(datamodule, rows):
                x = batch["x"].to(self.device)
                if self.identification_folds is None:
                    outputs.append(self.net(x)[:, head].argmax(-1).cpu())
                else:
                    outputs.append(self.net.features(x).float().cpu())
                idx.append(batch["idx"].cpu())
                y.append(batch["y"].cpu())
        finally:
            self.net.train(was_training)
        idx, y, outputs = torch.cat(idx), torch.cat(y), torch.cat(outputs)
        if self.identification_folds is None:
            return idx, outputs != y
        wrong = cross_fitted_errors(outputs.numpy(), y.numpy(), self.identification_folds)
        return idx, torch.from_numpy(wrong)

    def example_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """lambda_up on the error set, 1 elsewhere (all 1 before identification)."""
        if not self.identified:
            return torch.ones(len(idx), device=self.device)
        return 1 + (self.upweight - 1) * self.error_set[idx].float()

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled = batch["labeled"]
        logits = self(labeled["x"])
        losses = per_example_cross_entropy(logits, labeled["y"])
        weights = self.example_weights(labeled["idx"]).to(losses.dtype)
        loss = (weights * losses).sum() / (len(losses) * self.mean_weight)
        extras = {"xent": losses.mean().detach(), "upweighted": (weights > 1).float().mean()}
        return loss, logits, extras
