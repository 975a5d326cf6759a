"""Procedural stand-ins for CIFAR objects and LFW faces, for tests and offline runs.

Shapes are drawn with vectorised masks on a coordinate grid, with random position, size,
colour and noise, so a small CNN has to learn shape rather than a single pixel statistic.
"""

from __future__ import annotations

import numpy as np

from hackrobust.data.sources.pool import ImagePool

_SPLIT_STREAM = {"train": 0, "test": 1}


def _stream(split: str) -> int:
    if split not in _SPLIT_STREAM:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _SPLIT_STREAM[split]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return axis[None, :, None], axis[None, None, :]  # y (1, S, 1), x (1, 1, S)


def _uniform(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=(n, 1, 1)).astype(np.float32)


def _object_masks(rng: np.random.Generator, class_id: int, n: int) -> np.ndarray:
    """(n, 32, 32) boolean silhouettes of one class (CIFAR ids 0 to 3)."""
    y, x = _grid(32)
    cy, cx, s = (
        _uniform(rng, n, 0.35, 0.65),
        _uniform(rng, n, 0.35, 0.65),
        _uniform(rng, n, 0.18, 0.3),
    )
    dy, dx = y - cy, x - cx
    if class_id == 0:  # airplane: fuselage and wings, a cross
        return ((abs(dy) < 0.05) & (abs(dx) < s)) | ((abs(dx) < 0.06) & (abs(dy) < 0.7 * s))
    if class_id == 1:  # automobile: a box body on two wheels
        body = (abs(dx) < s) & (abs(dy) < 0.35 * s)
        wheels = [
            (dx - sign * 0.6 * s) ** 2 + (dy - 0.4 * s) ** 2 < (0.25 * s) ** 2 for sign in (-1, 1)
        ]
        return body | wheels[0] | wheels[1]
    if class_id == 2:  # bird: an elongated body with a wing above it
        body = (dx / s) ** 2 + (dy / (0.45 * s)) ** 2 < 1
        wing = (dy < 0) & (dy > -s) & (abs(dx + 0.3 * dy) < 0.25 * (s + dy))
        return body | wing
    if class_id == 3:  # cat: a round head with two ears
        head = dx**2 + dy**2 < (0.7 * s) ** 2
        ears = [
            (dy < -0.4 * s) & (dy > -1.1 * s) & (abs(dx - sign * 0.4 * s) < 0.3 * (dy + 1.1 * s))
            for sign in (-1, 1)
        ]
        return head | ears[0] | ears[1]
    raise ValueError(f"no synthetic object for class id {class_id}")


def synthetic_objects_pool(
    split: str = "train", n_per_class: int = 500, seed: int = 0
) -> ImagePool:
    """(4 x n_per_class, 3, 32, 32) objects with CIFAR ids: airplane, automobile, bird, cat.

    Object and background colours are uniform at random for every class: only the shape tells
    the classes apart. "test" draws from a different random stream than "train".
    """
    rng = np.random.default_rng([seed, _stream(split), 0])
    images, labels = [], []
    for class_id in range(4):
        mask = _object_masks(rng, class_id, n_per_class)[:, None]
        colour = rng.uniform(0.0, 1.0, size=(n_per_class, 3, 1, 1)).astype(np.float32)
        background = rng.uniform(0.0, 1.0, size=(n_per_class, 3, 1, 1)).astype(np.float32)
        image = np.where(mask, colour, background)
        image += 0.08 * rng.standard_normal(image.shape, dtype=np.float32)
        images.append(np.clip(image, 0, 1))
        labels.append(np.full(n_per_class, class_id))
    return ImagePool(np.concatenate(images), np.concatenate(labels).astype(np.int64))


def synthetic_faces_pool(split: str = "train", n_per_class: int = 500, seed: int = 0) -> ImagePool:
    """(2 x n_per_class, 1, 64, 64) cartoon faces: 1 smiling (mouth curves up), 0 flat or frowning."""
    rng = np.random.default_rng([seed, _stream(split), 1])
    y, x = _grid(64)
    images, labels = [], []
    for smiling in (0, 1):
        n = n_per_class
        cy, cx = _uniform(rng, n, 0.45, 0.55), _uniform(rng, n, 0.45, 0.55)
        r = _uniform(rng, n, 0.3, 0.4)
        face = ((x - cx) / (0.85 * r)) ** 2 + ((y - cy) / r) ** 2 < 1
        eye_y, eye_dx = cy - 0.3 * r, _uniform(rng, n, 0.3, 0.4) * r
        eyes = [(x - cx - s * eye_dx) ** 2 + (y - eye_y) ** 2 < (0.1 * r) ** 2 for s in (-1, 1)]
        curve = _uniform(rng, n, 1.5, 3.0) if smiling else _uniform(rng, n, -3.0, 0.3)
        dx = (x - cx) / r
        mouth_y = cy + 0.45 * r - curve * 0.5 * r * (dx**2 - 0.1)
        mouth = (abs(dx) < 0.45) & (abs(y - mouth_y) < 0.05)
        skin, background = _uniform(rng, n, 0.55, 0.9), _uniform(rng, n, 0.0, 0.35)
        image = np.where(face, skin, background)
        image = np.where(eyes[0] | eyes[1] | (mouth & face), 0.1, image)
        image = image + 0.06 * rng.standard_normal(image.shape, dtype=np.float32)
        images.append(np.clip(image, 0, 1)[:, None])
        labels.append(np.full(n, smiling))
    return ImagePool(
        np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int64)
    )
