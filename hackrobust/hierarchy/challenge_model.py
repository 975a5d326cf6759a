"""The challenge's network: torchvision ResNet50 with ``fc = Linear(2048, num_classes)``.

`challenge_resnet50` builds it as the project's `MultiHeadClassifier` (trunk = the ResNet50 with
``fc = Identity``, or ``Identity`` alone on precomputed features) and loads the challenge's
checkpoint: the backbone into the trunk, ``fc`` into every head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from hackrobust.models.classifier import MultiHeadClassifier

FEATURE_DIM = 2048


def load_challenge_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A torchvision ResNet50 state_dict read from `path`.

    Accepts a bare state_dict or ``{"state_dict": ...}``, and strips the ``module.`` prefix that
    `DataParallel` adds.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist: pass model.checkpoint=FILE, a torchvision "
            "resnet50 state_dict with fc = Linear(2048, num_classes)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path} is not a state_dict of tensors: save it with torch.save(model.state_dict())"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def split_fc(
    state: dict[str, torch.Tensor], num_classes: int | None = None, source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """(backbone entries, fc.weight (K, 2048), fc.bias (K,)); checks K against `num_classes`."""
    if "fc.weight" not in state or "fc.bias" not in state:
        raise ValueError(f"{source} has no fc.weight / fc.bias: it is not a full ResNet50")
    weight, bias = state["fc.weight"], state["fc.bias"]
    if weight.ndim != 2 or weight.shape[1] != FEATURE_DIM or bias.shape != weight.shape[:1]:
        raise ValueError(
            f"{source} has fc.weight {tuple(weight.shape)} and fc.bias {tuple(bias.shape)}; "
            f"expected (K, {FEATURE_DIM}) and (K,): is it a ResNet50?"
        )
    if num_classes is not None and weight.shape[0] != num_classes:
        raise ValueError(
            f"{source} classifies {weight.shape[0]} classes but the data has {num_classes} at "
            "the target level: check dataset.target_level, or use a matching checkpoint"
        )
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    return backbone, weight, bias


def resnet50_backbone(state: dict[str, torch.Tensor] | None = None, source: str = "") -> nn.Module:
    """torchvision ResNet50 (no download) with ``fc = Identity``; loads `state` strictly."""
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    if state is not None:
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"{source or 'the checkpoint'} does not fit torchvision's resnet50 "
                f"(a torchvision resnet50 state_dict is expected): {error}"
            ) from error
    return net


def challenge_resnet50(
    input_shape: Sequence[int],
    num_classes: int,
    num_heads: int = 1,
    checkpoint: str | None = None,
    head_only: bool = False,
    channels_last: bool | None = None,
) -> MultiHeadClassifier:
    """The challenge ResNet50 as a `MultiHeadClassifier` with `num_heads` heads.

    With `checkpoint` the trunk gets its backbone and every head a copy of its ``fc``. With
    `head_only` the inputs are the backbone's 2048-d features (the datamodule's cached ones) and
    the trunk is ``Identity``; `export_resnet50` then takes the backbone from the checkpoint.
    `channels_last` (default: on CUDA) stores the convolutions' weights NHWC, the layout tensor
    cores want; each convolution then returns NHWC too, and the state_dict keeps its keys.
    """
    input_shape = tuple(input_shape)
    state = load_challenge_state(checkpoint) if checkpoint else None
    backbone, weight, bias = (
        split_fc(state, num_classes, str(checkpoint)) if state else (None, None, None)
    )
    if head_only:
        if input_shape != (FEATURE_DIM,):
            raise ValueError(
                f"head_only takes ({FEATURE_DIM},) features, got input shape {input_shape}: "
                "set dataset.head_only=true too, so the datamodule serves cached features"
            )
        trunk = nn.Identity()
    else:
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ValueError(
                f"the challenge ResNet50 takes RGB images (3, H, W), got input shape "
                f"{input_shape}; with dataset.head_only=true set model.head_only=true too"
            )
        trunk = resnet50_backbone(backbone, str(checkpoint))
        if torch.cuda.is_available() if channels_last is None else channels_last:
            trunk = trunk.to(memory_format=torch.channels_last)
    net = MultiHeadClassifier(trunk, FEATURE_DIM, num_classes, num_heads)
    if weight is not None:
        with torch.no_grad():
            net.heads.weight.copy_(weight.repeat(num_heads, 1))
            net.heads.bias.copy_(bias.repeat(num_heads))
    return net
