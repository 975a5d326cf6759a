"""Humans: smiling or not, and a spurious cue (the word HAPPY or SAD written on the face, or a
tint) that agrees with the smile in the labeled set."""

from __future__ import annotations

import numpy as np

from hackrobust.data.exercises import default_score
from hackrobust.data.generators.base import add_noise, build_dataset, sample_images
from hackrobust.data.generators.draws import feature_and_mix_rate
from hackrobust.data.generators.mnist import default_data_dir

WORDS = ("SAD", "HAPPY")  # cue class 0, 1
TINTS = (-0.15, 0.15)


def _write_words(rng, images: np.ndarray, cue: np.ndarray) -> np.ndarray:
    """Draw WORDS[cue] in white at a random place in the top band of each (1, 64, 64) image."""
    from PIL import Image, ImageDraw

    out = images.copy()
    for i, (image, word) in enumerate(zip(images, cue, strict=True)):
        canvas = Image.fromarray((image[0] * 255).astype(np.uint8))
        ImageDraw.Draw(canvas).text(
            (int(rng.integers(2, 30)), int(rng.integers(1, 14))), WORDS[word], fill=255
        )
        out[i, 0] = np.asarray(canvas, dtype=np.float32) / 255.0
    return out


def make_humans(
    *,
    seed: int | None = 0,
    cue: str = "text",
    true_feature: str = "smile",
    noise: float = 0.02,
    source: str = "smiles",
    data_dir: str | None = None,
    draw: bool = False,
    **split_options,
):
    """1x64x64 faces; label 1 smiling. `cue`: "text" (HAPPY/SAD written) or "tint" (brightness).

    `draw=True` draws from the seed (see `draws`), in this order: the true feature ("smile" or
    "cue"); the unlabeled mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75). `cue` stays as given.
    """
    from hackrobust.data.sources import face_pool

    if cue not in ("text", "tint"):
        raise ValueError(f"cue must be 'text' or 'tint', got {cue!r}")
    true_feature, drawn = feature_and_mix_rate(
        draw, seed, "humans", ("smile", "cue"), true_feature, split_options
    )
    pools = {s: face_pool(source, data_dir or default_data_dir(), s) for s in ("train", "test")}

    def render(rng, features, split):
        faces = sample_images(rng, [pools[split].of_class(c) for c in (0, 1)], features[:, 0])
        if cue == "text":
            faces = _write_words(rng, faces, features[:, 1])
        else:
            faces = faces + np.asarray(TINTS, dtype=np.float32)[features[:, 1]][:, None, None, None]
        return add_noise(rng, np.clip(faces, 0, 1), noise)

    return build_dataset(
        name="humans",
        seed=seed,
        render=render,
        feature_names=("smile", "cue"),
        true_feature=true_feature,
        label_values=(0, 1),
        **split_options,
        default_score=default_score("humans"),
        params={"cue": cue, "noise": noise, "source": source, **drawn},
    )
