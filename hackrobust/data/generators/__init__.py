"""One generator per hackathon42 dataset. Each `make_<name>(seed=..., ...)` returns a
`HackathonData` with its answer key; Hydra configs name them by `_target_`.

Besides its own options (class choices, true feature, noise, image source), every generator
takes n_labeled, n_unlabeled, n_target, unlabeled_mix_rate and target_mix_rate (the fraction
of rows whose features disagree), passed through to `base.build_dataset`.
"""

from __future__ import annotations

from hackrobust.data.generators.embed import make_mnist_embed
from hackrobust.data.generators.happyfaces import make_happyfaces
from hackrobust.data.generators.humans import make_humans
from hackrobust.data.generators.mnist import (
    make_mnist_cc,
    make_mnist_constant_image,
    make_mnist_constant_image_random_row,
    make_mnist_sum,
    make_mnist_sum_bis,
    make_mnist_sum_noise_level,
    make_mnist_uniform_color_low_mix_rate,
    make_mnist_uniform_color_random_row,
)
from hackrobust.data.generators.toy import make_toy
from hackrobust.data.generators.vehicle_animal import make_vehicle_animal

__all__ = [
    "make_happyfaces",
    "make_humans",
    "make_mnist_cc",
    "make_mnist_constant_image",
    "make_mnist_constant_image_random_row",
    "make_mnist_embed",
    "make_mnist_sum",
    "make_mnist_sum_bis",
    "make_mnist_sum_noise_level",
    "make_mnist_uniform_color_low_mix_rate",
    "make_mnist_uniform_color_random_row",
    "make_toy",
    "make_vehicle_animal",
]
