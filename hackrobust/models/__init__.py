"""Models: a trunk and N linear heads, logits shaped (batch, heads, classes)."""

from hackrobust.models.auto import auto
from hackrobust.models.classifier import MultiHeadClassifier
from hackrobust.models.cnn import small_cnn
from hackrobust.models.mlp import mlp
from hackrobust.models.resnet import resnet

__all__ = ["MultiHeadClassifier", "auto", "mlp", "resnet", "small_cnn"]
