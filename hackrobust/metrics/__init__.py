"""Metrics that torchmetrics does not ship."""

from hackrobust.metrics.group_accuracy import GroupAccuracy, worst_k_accuracy

__all__ = ["GroupAccuracy", "worst_k_accuracy"]
