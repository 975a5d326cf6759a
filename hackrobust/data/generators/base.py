"""The frame every generator shares: labeled, unlabeled and target sets from one renderer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hackrobust.data.exercises import DEFAULT_SCORE
from hackrobust.data.generators.features import assign_features
from hackrobust.data.layout import HackathonData

# render(rng, features (n, F) class indices, split "train" | "test") -> inputs (n, ...)
Renderer = Callable[[np.random.Generator, np.ndarray, str], np.ndarray]


def build_dataset(
    *,
    name: str,
    seed: int | None,
    render: Renderer,
    feature_names: Sequence[str],
    true_feature: str,
    label_values: Sequence[int],
    n_labeled: int = 1200,
    n_unlabeled: int = 3800,
    n_target: int = 1200,
    labeled_mix_rate: float = 0.0,
    unlabeled_mix_rate: float = 0.5,
    target_mix_rate: float = 0.5,
    default_score: float = DEFAULT_SCORE,
    params: dict | None = None,
) -> HackathonData:
    """Draw features, render inputs and write the answer key.

    Every `make_<name>` passes its `**split_options` (the sizes and mix rates above, which
    default near the hackathon's) through to here. The labeled set has mix rate 0 (every
    feature agrees, so nothing tells which one is the label); `labeled_mix_rate` > 0 makes the
    labels unambiguous, for an oracle baseline only. Labeled and unlabeled inputs come from the
    source's train split, target inputs from its test split. Feature values are stored as the
    label each feature implies.
    """
    if true_feature not in feature_names:
        raise ValueError(f"true_feature {true_feature!r} is not one of {list(feature_names)}")
    rng = np.random.default_rng(seed)
    values = np.asarray(label_values, dtype=np.int64)
    n_features, n_classes = len(feature_names), len(values)
    true_index = list(feature_names).index(true_feature)

    def draw(n: int, mix_rate: float, split: str) -> tuple[np.ndarray, np.ndarray]:
        features = assign_features(rng, n, n_features, n_classes, mix_rate)
        return np.ascontiguousarray(render(rng, features, split), dtype=np.float32), features

    labeled = draw(n_labeled, labeled_mix_rate, "train")
    unlabeled = draw(n_unlabeled, unlabeled_mix_rate, "train")
    target = draw(n_target, target_mix_rate, "test")
    metadata = {
        "name": name,
        "features": list(feature_names),
        "true_feature": true_feature,
        "true_feature_index": true_index,
        "label_values": values.tolist(),
        "seed": seed,
        "n_labeled": n_labeled,
        "n_unlabeled": n_unlabeled,
        "n_target": n_target,
        **({"labeled_mix_rate": labeled_mix_rate} if labeled_mix_rate else {}),
        "unlabeled_mix_rate": unlabeled_mix_rate,
        "target_mix_rate": target_mix_rate,
        "default_score": default_score,
        **(params or {}),
    }
    return _with_answer_key(values, true_index, labeled, unlabeled, target, metadata)


def _with_answer_key(
    values: np.ndarray,
    true_index: int,
    labeled: tuple[np.ndarray, np.ndarray],
    unlabeled: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    metadata: dict,
) -> HackathonData:
    """The three drawn (inputs, feature classes) sets as a `HackathonData`: every feature class
    is stored as its label value (`values[class]`), and the labels are the true feature's."""
    (x_labeled, f_labeled), (x_unlabeled, f_unlabeled) = labeled, unlabeled
    x_target, f_target = target
    return HackathonData(
        x_labeled=x_labeled,
        y_labeled=values[f_labeled[:, true_index]],
        x_unlabeled=x_unlabeled,
        x_target=x_target,
        y_target=values[f_target[:, true_index]],
        features_unlabeled=values[f_unlabeled],
        features_target=values[f_target],
        metadata=metadata,
    )


def sample_images(rng: np.random.Generator, images_by_class: list[np.ndarray], classes: np.ndarray):
    """One image per row of `classes` from that class's images (without replacement if possible)."""
    out = np.empty((len(classes), *images_by_class[0].shape[1:]), dtype=np.float32)
    for c, pool in enumerate(images_by_class):
        rows = np.flatnonzero(classes == c)
        replace = len(rows) > len(pool)
        out[rows] = pool[rng.choice(len(pool), size=len(rows), replace=replace)]
    return out


def add_noise(rng: np.random.Generator, images: np.ndarray, std: float | np.ndarray) -> np.ndarray:
    """Gaussian pixel noise, clipped back to [0, 1]; `std` may be one value per row."""
    std = np.asarray(std, dtype=np.float32).reshape(-1, *[1] * (images.ndim - 1))
    noisy = images + std * rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(noisy, 0, 1)
