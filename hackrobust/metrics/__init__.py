"""Metrics that torchmetrics does not ship."""

from hackrobust.metrics.group_accuracy import GroupAccuracy, worst_k_accuracy
from hackrobust.metrics.head_agreement import HeadMutualInformation

__all__ = ["GroupAccuracy", "HeadMutualInformation", "worst_k_accuracy"]
