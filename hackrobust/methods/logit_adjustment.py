"""Logit adjustment: correct the logits for the gap between the training and target class priors.

Menon, Jayasumana, Rawat, Jain, Veit and Kumar, "Long-tail learning via logit adjustment",
ICLR 2021; official code github.com/google-research/google-research (`logit_adjustment/`).
With pi the class frequencies of the training set and pi_t the target prior (uniform by
default: the balanced error; "group_balanced": each training group equally likely, so a class's
share is its share of the groups, the prior of a species-balanced test set such as the Rayan
challenge's), two variants (`mode`):

- "posthoc" (default): ERM, then before predicting every head's bias gets
  tau x (log pi_t - log pi) (their eq. 9 with a general target prior). It is written into the
  heads' bias, so a weights-only export holds it, in `on_predict_start` (after Lightning loads
  the selected checkpoint); the buffer `applied_adjustment` records what the bias holds, so a
  second predict does not add it twice, and `on_fit_start` takes it out again;
- "loss": the logit-adjusted cross-entropy CE(f(x) + tau x (log pi - log pi_t), y) (their
  eq. 10); the logits are then used as they are.

tau defaults to 1, the paper's choice for both. A class without a training row counts as one
row, so its log prior stays finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.groups import fit_datamodule

MODES = ("posthoc", "loss")
GROUP_BALANCED = "group_balanced"


class LogitAdjustment(BaseMethod):
    """Cross-entropy with the logits shifted by tau x the log ratio of training to target priors."""

    def __init__(
        self,
        *args,
        mode: str = "posthoc",
        tau: float = 1.0,
        target_prior: Sequence[float] | str | None = None,
        **kwargs,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(target_prior, str) and target_prior != GROUP_BALANCED:
            raise ValueError(
                f"target_prior must be null (uniform), {GROUP_BALANCED!r} or one number per "
                f"class, got {target_prior!r}"
            )
        super().__init__(*args, **kwargs)
        num_classes = self.net.num_classes
        self.mode = mode
        self.tau = tau
        self.group_balanced = target_prior == GROUP_BALANCED
        if target_prior is None or self.group_balanced:  # group_balanced: set at setup("fit")
            target = torch.full((num_classes,), 1.0 / num_classes)
        else:
            target = torch.tensor([float(p) for p in target_prior])
            if target.shape != (num_classes,) or bool((target <= 0).any()):
                raise ValueError(
                    f"target_prior must hold {num_classes} positive numbers, got {target_prior}"
                )
            target = target / target.sum()
        self.register_buffer("target_prior", target)
        # Class frequencies of the training set (zeros until setup("fit")); checkpoints carry it.
        self.register_buffer("train_prior", torch.zeros(num_classes))
        # What the heads' bias holds on top of the trained one, (heads x classes,).
        self.register_buffer("applied_adjustment", torch.zeros(self.num_heads * num_classes))

    def set_train_prior(self, y: torch.Tensor) -> None:
        counts = torch.bincount(y.cpu(), minlength=self.net.num_classes).float().clamp_min(1)
        self.train_prior = (counts / counts.sum()).to(self.train_prior.device)

    def set_group_balanced_prior(self, y: torch.Tensor, group: torch.Tensor) -> None:
        """pi_t(k) = the share of the training groups whose rows are of class k."""
        pairs = torch.unique(torch.stack([group.cpu(), y.cpu()]), dim=1)
        counts = torch.bincount(pairs[1], minlength=self.net.num_classes).float().clamp_min(1)
        self.target_prior = (counts / counts.sum()).to(self.target_prior.device)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            rows = fit_datamodule(self, "LogitAdjustment").train_set.tensors
            self.set_train_prior(rows["y"])
            if self.group_balanced:
                if "group" not in rows:
                    raise ValueError(
                        "target_prior=group_balanced needs training groups: this datamodule's "
                        "train_set has none; give the prior as numbers instead"
                    )
                self.set_group_balanced_prior(rows["y"], rows["group"])

    def adjustment(self) -> torch.Tensor:
        """tau x (log pi_t - log pi), per class: (K,)."""
        if not bool((self.train_prior > 0).all()):
            raise RuntimeError("LogitAdjustment: no training prior (setup('fit') was not run)")
        return self.tau * (self.target_prior.log() - self.train_prior.log())

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled = batch["labeled"]
        logits = self(labeled["x"])
        if self.mode == "posthoc":
            return self.heads_cross_entropy(logits, labeled["y"]), logits, {}
        adjusted = logits - self.adjustment().to(logits.dtype)
        return self.heads_cross_entropy(adjusted, labeled["y"]), logits, {}

    @torch.no_grad()
    def set_bias_adjustment(self, adjustment: torch.Tensor) -> None:
        """Make the heads' bias hold `adjustment` (heads x classes,) on top of the trained bias."""
        bias = self.net.heads.bias
        bias.add_((adjustment - self.applied_adjustment).to(bias.dtype))
        # In place: predict runs in inference mode, whose new tensors could not be loaded into.
        self.applied_adjustment.copy_(adjustment)

    def on_fit_start(self) -> None:
        self.set_bias_adjustment(torch.zeros_like(self.applied_adjustment))

    def on_predict_start(self) -> None:
        if self.mode == "posthoc":
            self.set_bias_adjustment(self.adjustment().repeat(self.num_heads))
