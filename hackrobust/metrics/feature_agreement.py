"""Which feature does a head follow? The share of rows where its prediction is each feature's.

Every target row of a generated dataset shows each feature (left digit, colour, ...) as a class, and
its group id says which: the id read as a base-K number gives the class of each of the F features
(as `HackathonDataModule.group_of` writes it). A head that learnt feature f agrees with it on every
row (agreement 1) and with another feature only where the two agree (on half the rows of a
two-feature target set at mix rate 0.5); a head that blends the features (a majority vote of three
digits) agrees with none of them fully.
Counts are kept per group and class, so the metric is correct under DDP.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def group_feature_classes(num_classes: int, num_features: int) -> torch.Tensor:
    """(K^F, F): the class of each feature in each group id, most significant feature first."""
    ids = torch.arange(num_classes**num_features)
    return torch.stack(torch.unravel_index(ids, (num_classes,) * num_features), dim=1)


def feature_names_of_groups(group_names: list[str]) -> list[str] | None:
    """["left", "right"] from names like "left=0,right=1"; None if they are not such names."""
    if not group_names or not all("=" in name for name in group_names):
        return None
    return [part.split("=", 1)[0] for part in group_names[0].split(",")]


class FeatureAgreement(Metric):
    """Per feature, the share of rows whose predicted class is that feature's class."""

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(self, num_classes: int, num_features: int, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer(
            "feature_classes", group_feature_classes(num_classes, num_features), persistent=False
        )
        shape = (len(self.feature_classes), num_classes)
        self.add_state("counts", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, groups: torch.Tensor) -> None:
        """preds: predicted class per row (N,) or logits (N, K); groups: (N,), < 0 unknown."""
        if preds.ndim == 2:
            preds = preds.argmax(dim=-1)
        known = groups >= 0
        if bool((groups[known] >= len(self.feature_classes)).any()):
            raise ValueError(f"group ids must be < {len(self.feature_classes)}")
        cells = groups[known] * self.counts.shape[1] + preds[known]
        one_hot = torch.nn.functional.one_hot(cells, self.counts.numel())
        self.counts += one_hot.sum(dim=0).view_as(self.counts)

    def compute(self) -> torch.Tensor:
        """(F,) agreement of the predictions with each feature; NaN before any row."""
        agreeing = self.counts.gather(1, self.feature_classes).sum(dim=0)  # (F,)
        return agreeing.double() / self.counts.sum().double()
