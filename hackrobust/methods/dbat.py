"""D-BAT: train models one after another, each disagreeing with the earlier ones off the labels.

Pagliardini, Jaggi, Fleuret, Rabbani and Dohmatob, "Agree to Disagree: Diversity through
Disagreement for Better Transferability", ICLR 2023; official code
github.com/mpagli/Agree-to-Disagree (`src/main.py`, its multiclass `dbat_loss_type` "v1").
Member m minimises

    its labeled cross-entropy
    + alpha x mean over earlier members e of the mean over unlabeled x of
      -log(p_e(y_e) (1 - p_m(y_e)) + (1 - p_e(y_e)) p_m(y_e)),  y_e = argmax of p_e(x)

with the earlier members frozen in eval mode. With two classes this is the paper's
-log(p_e(0) p_m(1) + p_e(1) p_m(0)). alpha defaults to 1, the default of `--alpha` there; their
Waterbirds and Camelyon17 scripts used 1e-4 and 1e-6.

Here the members are separate networks (the model factory with one head each), stacked as the
heads of one module and trained within one fit: member m during epochs [m E, (m + 1) E), the last
member also through any remaining epochs. One optimizer holds every parameter; a member gets
gradients only while active (Lightning zeroes them to None) and torch optimizers skip parameters
without one (no decay, no momentum), so each member starts from a fresh optimizer state, as in
the official code. Unlike there, a scheduler runs over the whole fit, not once per member, and
the active member reads its labeled and unlabeled batches in one forward pass. Checkpoints are
only selected while the last member trains (`selection_ready`); earlier members are kept as they
were at their last epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from hackrobust.methods.base import BaseMethod

EPS = 1e-7  # as in the official code


def disagreement_loss(frozen_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log P(the two models disagree on the frozen one's class): (B, K) x 2."""
    p_frozen, label = frozen_probs.max(dim=-1)
    p = probs.gather(-1, label[:, None]).squeeze(-1)
    return -(p_frozen * (1 - p) + (1 - p_frozen) * p + EPS).log().mean()


class Ensemble(nn.Module):
    """Independent single-head models whose logits are stacked as heads: (B, members, classes)."""

    def __init__(self, members: Sequence[nn.Module], num_classes: int):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = num_classes
        self.num_heads = len(self.members)

    @classmethod
    def factory(cls, model: Callable[..., nn.Module]) -> Callable[..., Ensemble]:
        """Wrap a model factory: `num_heads` separate models of one head each."""

        def build(input_shape: Sequence[int], num_classes: int, num_heads: int) -> Ensemble:
            members = [
                model(input_shape=input_shape, num_classes=num_classes, num_heads=1)
                for _ in range(num_heads)
            ]
            return cls(members, num_classes)

        return build

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's features, side by side: (B, sum of feature dims)."""
        return torch.cat([member.features(x) for member in self.members], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(x) for member in self.members], dim=1)


class DBAT(BaseMethod):
    """`num_heads` separate models, trained in turn, each disagreeing with those before it."""

    uses_unlabeled = True

    def __init__(
        self,
        model: Callable[..., nn.Module],
        *args,
        num_heads: int = 2,
        alpha: float = 1.0,
        epochs_per_member: int | None = None,
        **kwargs,
    ):
        if num_heads < 2:
            raise ValueError(f"D-BAT needs at least 2 members, got num_heads={num_heads}")
        if epochs_per_member is not None and epochs_per_member < 1:
            raise ValueError(f"epochs_per_member must be at least 1, got {epochs_per_member}")
        super().__init__(Ensemble.factory(model), *args, num_heads=num_heads, **kwargs)
        self.alpha = alpha
        self.epochs_per_member = epochs_per_member

    def member_epochs(self) -> int:
        """E: `epochs_per_member`, else the trainer's max_epochs shared out between the members."""
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        if self.epochs_per_member is not None:
            needed = self.num_heads * self.epochs_per_member
            if max_epochs is not None and 0 <= max_epochs < needed:
                raise ValueError(
                    f"D-BAT trains {self.num_heads} members x {self.epochs_per_member} epochs: "
                    f"trainer.max_epochs must be at least {needed}, got {max_epochs}"
                )
            return self.epochs_per_member
        if max_epochs is None or max_epochs < self.num_heads:
            raise ValueError(
                f"D-BAT trains its {self.num_heads} members one after another: trainer.max_epochs "
                f"must be at least num_heads={self.num_heads}, got {max_epochs} "
                "(or set method.epochs_per_member)"
            )
        return max_epochs // self.num_heads

    def active_member(self) -> int:
        """The member trained in the current epoch (0 outside a trainer)."""
        if self._trainer is None:
            return 0
        return min(self.current_epoch // self.member_epochs(), self.num_heads - 1)

    def selection_ready(self) -> bool:
        """Only the last member's epochs may be selected: before them the ensemble is unfinished."""
        return self.active_member() == self.num_heads - 1

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.member_epochs()  # fail before training when the epochs cannot be shared out

    def on_train_epoch_start(self) -> None:
        active = self.active_member()
        for index, member in enumerate(self.net.members):
            member.requires_grad_(index == active)

    def on_fit_end(self) -> None:
        self.net.requires_grad_(True)  # the turns are over: leave no member frozen

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        n_labeled = len(labeled["x"])
        x = torch.cat([labeled["x"], unlabeled["x"]])
        active = self.active_member()
        logits = []
        for index, member in enumerate(self.net.members):
            # Only the active member trains; the others neither learn nor update norm statistics.
            member.train(index == active and self.training)
            with torch.set_grad_enabled(index == active and torch.is_grad_enabled()):
                logits.append(member(x))
        logits = torch.cat(logits, dim=1)  # (B_labeled + B_unlabeled, H, K)
        labeled_logits = logits[:n_labeled]
        cross_entropy = self.heads_cross_entropy(
            labeled_logits[:, active : active + 1], labeled["y"]
        )
        probs = logits[n_labeled:].float().softmax(dim=-1)
        if active == 0:
            disagreement = probs.new_zeros(())
        else:
            disagreement = torch.stack(
                [disagreement_loss(probs[:, e], probs[:, active]) for e in range(active)]
            ).mean()
        loss = cross_entropy + self.alpha * disagreement
        return loss, labeled_logits, {"xent": cross_entropy, "disagreement": disagreement}
