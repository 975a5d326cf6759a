"""FixMatch-style consistency: the model's own confident predictions on unlabeled inputs become
labels for a perturbed copy of those inputs.

Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence",
NeurIPS 2020; official code github.com/google-research/fixmatch. Loss, per head:

    cross-entropy on the labeled batch
    + consistency_weight x mean over the unlabeled batch of
      1[max p(x) > threshold] x cross-entropy(model(strong(x)), argmax p(x))

Two differences from the paper. FixMatch's weak view (flip and shift) would change a digit or
which side of the image it sits on, so p is read on the input itself, in eval mode and without
gradient. The strong view is Gaussian noise plus one erased square (Cutout, FixMatch's last
strong augmentation; torchvision's RandomErasing, one place per batch; on vector inputs such as
embeddings, a random share of the features), not RandAugment, whose colour and geometry
operations would alter the very features these datasets are about.

Alone it learns whatever rule the labeled set gives it. It is made for the self-training student
(`self_training=fixmatch`), whose labeled set holds the chosen head's confident pseudo-labels:
the term carries them over to the rows the head was least sure of (hackrobust/training/self_training.py).
It needs steps: the student's `self_training.epochs` may be set above the run's. The term
itself, `Consistency`, also serves DivDis (`method.consistency`), where each head learns its
own rule on the rows it is sure of.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from hackrobust.methods.base import BaseMethod


class Consistency:
    """FixMatch's unlabeled term for a multi-head network: per row and head, a prediction above
    `threshold` (read in eval mode, without gradient) labels the strong view of that row.

    Args:
        weight: the term's weight in the loss.
        threshold: a prediction counts as a label only above this confidence.
        noise_std: standard deviation of the Gaussian noise in the strong view (inputs are
            standardised, so in units of the data's standard deviation).
        erase_area: share of the input set to 0 (its mean, inputs being standardised): one
            square of an image, a random set of a vector's features; 0 erases nothing.
    """

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = 0.95,
        noise_std: float = 0.3,
        erase_area: float = 0.08,
    ):
        if not 0 <= erase_area < 1:
            raise ValueError(f"erase_area is a share of the input, in [0, 1); got {erase_area}")
        self.weight = weight
        self.threshold = threshold
        self.noise_std = noise_std
        self.erase_area = erase_area
        self.erase_square = (
            v2.RandomErasing(p=1.0, scale=(erase_area, erase_area), ratio=(1.0, 1.0), value=0)
            if erase_area
            else None
        )

    def strong_view(self, x: torch.Tensor) -> torch.Tensor:
        """The input with Gaussian noise and `erase_area` of it erased, at the same place for
        the whole batch: one square of an image, a random set of a vector's features."""
        x = x + self.noise_std * torch.randn_like(x)
        if not self.erase_area:
            return x
        if x.ndim == 4:
            return self.erase_square(x)
        features = x.flatten(1)
        erased = torch.randperm(features.shape[1], device=x.device)
        erased = erased[: round(self.erase_area * features.shape[1])]
        return features.index_fill(1, erased, 0.0).view_as(x)

    @torch.no_grad()
    def pseudo_labels(self, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row and head, the predicted class and whether it is confident enough: (B, H) each."""
        was_training = net.training
        net.eval()
        probs = net(x).float().softmax(dim=-1)
        net.train(was_training)
        confidence, labels = probs.max(dim=-1)
        return labels, confidence > self.threshold

    def loss(
        self, net: nn.Module, x: torch.Tensor, labels: torch.Tensor, confident: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """The weighted term on the unlabeled batch `x` given its `pseudo_labels` and, for the
        logs, its unweighted value and the share of confident (row, head) pairs. Mean over every
        row and head."""
        strong_logits = net(self.strong_view(x))
        per_row = F.cross_entropy(
            strong_logits.flatten(0, 1).float(), labels.flatten(), reduction="none"
        )
        consistency = (per_row * confident.flatten()).mean()
        extras = {"consistency": consistency, "confident_share": confident.float().mean()}
        return self.weight * consistency, extras

    def __call__(self, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """`loss` on the current `pseudo_labels` of `x`."""
        return self.loss(net, x, *self.pseudo_labels(net, x))


class FixMatch(BaseMethod):
    """Labeled cross-entropy plus confident-prediction consistency under noise and erasing.

    Args: `consistency_weight` and the rest, as `Consistency`'s `weight` and the rest.
    """

    uses_unlabeled = True

    def __init__(
        self,
        *args,
        consistency_weight: float = 1.0,
        threshold: float = 0.95,
        noise_std: float = 0.3,
        erase_area: float = 0.08,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.consistency = Consistency(consistency_weight, threshold, noise_std, erase_area)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        labeled, unlabeled = batch["labeled"], batch["unlabeled"]
        labels, confident = self.consistency.pseudo_labels(self.net, unlabeled["x"])
        # Two passes, so batch norm never mixes clean labeled rows with noisy unlabeled ones.
        labeled_logits = self(labeled["x"])
        cross_entropy = self.heads_cross_entropy(labeled_logits, labeled["y"])
        consistency, extras = self.consistency.loss(self.net, unlabeled["x"], labels, confident)
        return cross_entropy + consistency, labeled_logits, {"xent": cross_entropy, **extras}
