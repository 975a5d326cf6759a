"""Group DRO: minimise the loss of the worst training group, with online group weights.

Sagawa, Koh, Hashimoto and Liang, "Distributionally Robust Neural Networks for Group Shifts",
ICLR 2020; official code github.com/kohpangwei/group_DRO (`loss.py`, `LossComputer`). Each step,
with per-group mean losses l_g of the batch and n_g the training rows of group g,

    q_g <- q_g x exp(eta x (l_g + C / sqrt(n_g)))   then q <- q / sum(q)
    loss = sum_g q_g l_g

(exponentiated-gradient ascent on q, then descent on the q-weighted loss with the updated q, as
there). Defaults as there: step size eta 0.01 (`--robust_step_size`), generalization adjustment
C 0 (`--generalization_adjustment`). Differences, each deliberate:

- only groups in the batch are updated: an absent group keeps its weight before renormalising
  (there, an absent group's loss is 0 but C / sqrt(n_g) is still added to it);
- q starts uniform over the groups with training rows, and groups without any stay at 0 (there,
  uniform over every group); with groups = feature combinations most have no training row;
- the reported loss is the q-weighted batch loss without the constant C / sqrt(n_g) terms (the
  gradient is the same);
- `ema` (null by default): with many small groups a batch's mean loss of a group is one or two
  rows; with `ema` set, q is updated with an exponential moving average of each group's
  adjusted loss (history weight `ema`, i.e. 1 - gamma of the official `update_exp_avg_loss`,
  whose gamma is 0.1), started at the group's first batch.

The number of groups is read from the datamodule in `setup("fit")` (`len(group_names)`, else
`num_groups`), the counts n_g from its `train_set`; q is a buffer, so checkpoints carry it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.groups import (
    datamodule_num_groups,
    fit_datamodule,
    per_example_cross_entropy,
    resize_buffers,
)


def group_mean(
    losses: torch.Tensor, groups: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(each group's mean of `losses`, 0 where absent; each group's row count): (G,), (G,).

    One-hot sums, as the official `compute_group_avg`: deterministic on CUDA, unlike a weighted
    bincount or index_add.
    """
    if bool((groups < 0).any()) or bool((groups >= num_groups).any()):
        bad = groups[(groups < 0) | (groups >= num_groups)].unique().tolist()
        raise ValueError(f"group ids must be in [0, {num_groups}), got {bad}")
    one_hot = F.one_hot(groups, num_groups).to(losses.dtype)  # (B, G)
    counts = one_hot.sum(dim=0)
    return (one_hot.T @ losses) / counts.clamp_min(1), counts


class GroupDRO(BaseMethod):
    """Cross-entropy reweighted online towards the training groups with the highest loss."""

    def __init__(
        self, *args, eta: float = 0.01, adjustment: float = 0.0, ema: float | None = None, **kwargs
    ):
        if eta < 0:
            raise ValueError(f"eta must be non-negative, got {eta}")
        if adjustment < 0:
            raise ValueError(f"adjustment must be non-negative, got {adjustment}")
        if ema is not None and not 0 <= ema < 1:
            raise ValueError(f"ema must be in [0, 1) or null, got {ema}")
        super().__init__(*args, **kwargs)
        self.eta = eta
        self.adjustment = adjustment
        self.ema = ema
        # Sized by `init_groups` (setup); checkpoints carry them.
        self.register_buffer("q", torch.empty(0))
        self.register_buffer("group_adjustment", torch.empty(0))
        self.register_buffer("ema_loss", torch.empty(0))
        self.register_buffer("ema_seen", torch.empty(0, dtype=torch.bool))

    _group_buffers = ("q", "group_adjustment", "ema_loss", "ema_seen")

    @property
    def num_groups(self) -> int:
        return len(self.q)

    def init_groups(self, counts: torch.Tensor) -> None:
        """Uniform q over the groups with training rows; C / sqrt(n_g) for those groups."""
        counts = torch.as_tensor(counts, dtype=torch.float32, device=self.q.device)
        present = counts > 0
        if not bool(present.any()):
            raise ValueError("GroupDRO: no group has a training row")
        self.q = present.float() / present.sum()
        self.group_adjustment = torch.where(
            present, self.adjustment / counts.clamp_min(1).sqrt(), torch.zeros_like(counts)
        )
        self.ema_loss = torch.zeros_like(counts)
        self.ema_seen = torch.zeros_like(present)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = fit_datamodule(self, "GroupDRO")
        num_groups = datamodule_num_groups(datamodule, "GroupDRO")
        groups = datamodule.train_set.tensors["group"]
        if bool((groups < 0).any()):
            raise ValueError("GroupDRO needs a known group (>= 0) for every training row")
        # Before a resumed run restores its checkpoint, which then overwrites q.
        self.init_groups(torch.bincount(groups, minlength=num_groups)[:num_groups])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_buffers(self, state_dict, prefix, self._group_buffers)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_q(self, group_loss: torch.Tensor, present: torch.Tensor) -> None:
        """One exponentiated-gradient step on q from this batch's groups (absent ones stay)."""
        signal = group_loss.float() + self.group_adjustment
        if self.ema is not None:
            smoothed = self.ema * self.ema_loss + (1 - self.ema) * signal
            self.ema_loss = torch.where(
                present, torch.where(self.ema_seen, smoothed, signal), self.ema_loss
            )
            self.ema_seen = self.ema_seen | present
            signal = self.ema_loss
        q = self.q * torch.exp(self.eta * signal * present)
        self.q = q / q.sum()

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled = batch["labeled"]
        logits = self(labeled["x"])
        losses = per_example_cross_entropy(logits, labeled["y"])
        groups = labeled["group"]
        if self.num_groups == 0:
            # Outside a fit (a unit step): the groups this batch shows, uniform q.
            self.init_groups(torch.ones(int(groups.max()) + 1))
        group_loss, counts = group_mean(losses, groups, self.num_groups)
        present = counts > 0
        if self.training and torch.is_grad_enabled():
            self.update_q(group_loss.detach(), present)
        loss = group_loss @ self.q.to(group_loss.dtype)
        extras = {
            "xent": losses.mean().detach(),
            "worst_group_loss": group_loss.detach()[present].max(),
            "max_q": self.q.max(),
        }
        return loss, logits, extras
