"""Metrics that torchmetrics does not ship."""

from hackrobust.metrics.feature_agreement import FeatureAgreement, feature_names_of_groups
from hackrobust.metrics.group_accuracy import GroupAccuracy, worst_k_accuracy
from hackrobust.metrics.head_agreement import HeadMutualInformation

__all__ = [
    "FeatureAgreement",
    "GroupAccuracy",
    "feature_names_of_groups",
    "HeadMutualInformation",
    "worst_k_accuracy",
]
