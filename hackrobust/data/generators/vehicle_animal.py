"""Vehicle-Animal: a CIFAR plane or car next to a bird or cat, the animal on a random side."""

from __future__ import annotations

import numpy as np

from hackrobust.data.exercises import default_score
from hackrobust.data.generators.base import add_noise, build_dataset, sample_images
from hackrobust.data.generators.draws import feature_and_mix_rate
from hackrobust.data.generators.mnist import default_data_dir

VEHICLES, ANIMALS = (0, 1), (2, 3)  # CIFAR-10 ids: airplane, automobile; bird, cat


def make_vehicle_animal(
    *,
    seed: int | None = 0,
    true_feature: str = "animal",
    noise: float = 0.0,
    source: str = "cifar",
    data_dir: str | None = None,
    draw: bool = False,
    **split_options,
):
    """3x32x64 images. Label 0: airplane or bird, 1: automobile or cat, per the true feature.

    `draw=True` draws from the seed (see `draws`), in this order: the true feature ("vehicle"
    or "animal"); the unlabeled mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75). The classes
    stay the four above.
    """
    true_feature, drawn = feature_and_mix_rate(
        draw, seed, "vehicle_animal", ("vehicle", "animal"), true_feature, split_options
    )
    from hackrobust.data.sources import object_pool

    pools = {s: object_pool(source, data_dir or default_data_dir(), s) for s in ("train", "test")}

    def render(rng, features, split):
        by_class = {c: pools[split].of_class(c) for c in VEHICLES + ANIMALS}
        vehicle = sample_images(rng, [by_class[c] for c in VEHICLES], features[:, 0])
        animal = sample_images(rng, [by_class[c] for c in ANIMALS], features[:, 1])
        animal_left = (rng.random(len(features)) < 0.5)[:, None, None, None]
        left, right = np.where(animal_left, animal, vehicle), np.where(animal_left, vehicle, animal)
        return add_noise(rng, np.concatenate([left, right], axis=-1), noise)

    return build_dataset(
        name="vehicle_animal",
        seed=seed,
        render=render,
        feature_names=("vehicle", "animal"),
        true_feature=true_feature,
        label_values=(0, 1),
        **split_options,
        default_score=default_score("vehicle_animal"),
        params={
            "noise": noise,
            "source": source,
            "classes": {"vehicle": ["airplane", "automobile"], "animal": ["bird", "cat"]},
            **drawn,
        },
    )
