"""Generator statistics: shapes, dtypes, mix rates, class balance, determinism, the answer key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hackrobust.data import generators
from hackrobust.data.generators.features import assign_features, is_mixed
from hackrobust.data.layout import save_hackathon_dir
from hackrobust.data.loader import load_hackathon_dir

SIZES = {"n_labeled": 60, "n_unlabeled": 200, "n_target": 100}
# name: (keyword arguments, input shape, label values)
CASES = {
    "toy": ({}, (2,), [0, 1]),
    "mnist_cc": ({"source": "digits"}, (1, 28, 56), [0, 1]),
    "mnist_constant_image": ({"source": "digits"}, (1, 28, 56), [0, 2]),
    "mnist_constant_image_random_row": ({"source": "digits"}, (1, 28, 56), [0, 2]),
    "mnist_uniform_color_random_row": ({"source": "digits"}, (1, 28, 56), [0, 1]),
    "mnist_uniform_color_low_mix_rate": ({"source": "digits"}, (1, 28, 56), [0, 1]),
    "mnist_sum": ({"source": "digits"}, (1, 28, 28), [0, 1]),
    "mnist_sum_bis": ({"source": "digits"}, (1, 28, 28), [0, 1]),
    "mnist_sum_noise_level": ({"source": "digits"}, (1, 28, 28), [0, 1]),
    "mnist_embed": ({"source": "digits"}, (64,), [2, 3]),
    "mnist_embed_456": ({"source": "digits", "variant": "456"}, (64,), [4, 5, 6]),
    "vehicle_animal": ({"source": "synthetic"}, (3, 32, 64), [0, 1]),
    "humans": ({"source": "synthetic"}, (1, 64, 64), [0, 1]),
}
METADATA_KEYS = {
    "name", "features", "true_feature", "true_feature_index", "label_values", "seed",
    "unlabeled_mix_rate", "target_mix_rate", "default_score",
}  # fmt: skip


def make(name, **overrides):
    kwargs, _, _ = CASES[name]
    function = getattr(generators, f"make_{name.removesuffix('_456')}")
    return function(**{**kwargs, **SIZES, **overrides})


def test_every_generator_is_covered():
    # HappyFaces has no offline stand-in: tests/test_happyfaces.py builds fake archives for it.
    expected = set(generators.__all__) - {"make_happyfaces"}
    assert {f"make_{n.removesuffix('_456')}" for n in CASES} == expected


@pytest.mark.parametrize("name", CASES)
def test_shapes_dtypes_labels_and_answer_key(name):
    _, shape, label_values = CASES[name]
    data = make(name, seed=3)
    assert data.input_shape == shape
    for x, n in ((data.x_labeled, 60), (data.x_unlabeled, 200), (data.x_target, 100)):
        assert x.dtype == np.float32 and len(x) == n and np.isfinite(x).all()
        if len(shape) == 3:
            assert x.min() >= 0 and x.max() <= 1
    assert data.y_labeled.dtype == np.int64 and data.label_values.tolist() == label_values

    meta = data.metadata
    assert set(meta) >= METADATA_KEYS and json.loads(json.dumps(meta)) == meta
    true = meta["true_feature_index"]
    assert meta["features"][true] == meta["true_feature"]
    # The answer key: the true feature's column is the label; every column is in label values.
    np.testing.assert_array_equal(data.y_target, data.features_target[:, true])
    assert set(np.unique(data.features_unlabeled)) <= set(label_values)
    assert meta["default_score"] == (0.5 if name in ("vehicle_animal", "humans") else 0.8)


@pytest.mark.parametrize("name", CASES)
def test_mix_rates_and_class_balance(name):
    data = make(name, seed=1, unlabeled_mix_rate=0.25, target_mix_rate=0.4)
    assert is_mixed(data.features_unlabeled).sum() == round(0.25 * 200)
    assert is_mixed(data.features_target).sum() == round(0.4 * 100)
    counts = np.unique(data.y_labeled, return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # the labeled set is balanced


def test_labeled_features_all_agree_and_low_mix_default():
    data = make("mnist_uniform_color_low_mix_rate", seed=0)
    assert data.metadata["unlabeled_mix_rate"] < data.metadata["target_mix_rate"]
    for name in ("mnist_cc", "mnist_sum_bis"):
        assert make(name, seed=0).metadata["unlabeled_mix_rate"] == 0.5


def test_labeled_mix_rate_makes_labels_unambiguous_for_the_oracle():
    """Toy points sit at (+-1, +-1): the label is the sign of x; with a labeled mix rate some
    rows' y sign disagrees with it, and the rate is recorded (absent by default)."""
    default = make("toy", seed=0, noise=0.0)
    assert "labeled_mix_rate" not in default.metadata
    assert (np.sign(default.x_labeled) == np.sign(default.x_labeled[:, :1])).all()

    oracle = make("toy", seed=0, noise=0.0, labeled_mix_rate=0.5)
    x, y = oracle.x_labeled, oracle.y_labeled
    np.testing.assert_array_equal(x[:, 0] > 0, y == 1)  # labels follow the true feature
    assert (np.sign(x[:, 1]) != np.sign(x[:, 0])).sum() == round(0.5 * 60)
    assert oracle.metadata["labeled_mix_rate"] == 0.5


@pytest.mark.parametrize("name", ["toy", "mnist_sum", "mnist_embed", "humans"])
def test_same_seed_same_arrays_other_seed_other_arrays(name):
    a, b, c = make(name, seed=5), make(name, seed=5), make(name, seed=6)
    np.testing.assert_array_equal(a.x_unlabeled, b.x_unlabeled)
    np.testing.assert_array_equal(a.features_target, b.features_target)
    assert not np.array_equal(a.x_unlabeled, c.x_unlabeled)


def test_features_carry_their_signal():
    """In mnist_cc the left half follows the left feature, the right half the right feature."""
    data = make("mnist_cc", seed=0, n_unlabeled=400, unlabeled_mix_rate=0.5)
    x, f = data.x_unlabeled[:, 0], data.features_unlabeled
    for column, half in ((0, x[..., :28]), (1, x[..., 28:])):
        other = x[..., 28:] if column == 0 else x[..., :28]
        gap = abs(half[f[:, column] == 0].mean(0) - half[f[:, column] == 1].mean(0)).mean()
        leak = abs(other[f[:, column] == 0].mean(0) - other[f[:, column] == 1].mean(0)).mean()
        assert gap > 3 * leak


def test_noise_level_feature_is_the_noise():
    data = make("mnist_sum_noise_level", seed=0)
    levels = data.metadata["noise_levels"]
    x, noise_class = data.x_unlabeled, data.features_unlabeled[:, 1]
    background = x[:, 0, :3, :].reshape(len(x), -1).std(axis=1)  # top rows: mostly background
    assert background[noise_class == 1].mean() > background[noise_class == 0].mean()
    assert levels[1] > levels[0]


def test_assign_features_validates_and_counts():
    rng = np.random.default_rng(0)
    f = assign_features(rng, 101, 3, 3, 0.3)
    assert f.shape == (101, 3) and is_mixed(f).sum() == 30 and f.max() == 2
    with pytest.raises(ValueError, match="mix rate"):
        assign_features(rng, 10, 2, 2, 1.5)


def test_round_trip_through_the_layout(tmp_path):
    data = make("mnist_cc", seed=2)
    loaded = load_hackathon_dir(save_hackathon_dir(data, tmp_path / "d"))
    np.testing.assert_array_equal(loaded.x_target, data.x_target)
    assert loaded.metadata == data.metadata


def test_command_line_writes_a_folder(tmp_path, capsys):
    from hackrobust.data.generators.__main__ import main

    main(["toy", str(tmp_path / "toy"), "--seed", "4"])
    assert load_hackathon_dir(tmp_path / "toy").metadata["seed"] == 4
    main(["toy", str(tmp_path / "drawn"), "--seed", "4", "--draw"])
    assert "draw" in load_hackathon_dir(tmp_path / "drawn").metadata
    with pytest.raises(FileExistsError):
        main(["toy", str(tmp_path / "toy")])


def test_embedder_codes_carry_both_digits_and_validate():
    """A linear probe reads each side's digit from the trained embedder's codes, on the target
    rows (test split) after fitting on unlabeled ones."""
    from sklearn.linear_model import LogisticRegression

    def probe(data, column):
        fit = LogisticRegression(max_iter=2000).fit(
            data.x_unlabeled, data.features_unlabeled[:, column]
        )
        return (fit.predict(data.x_target) == data.features_target[:, column]).mean()

    options = {"seed": 0, "n_unlabeled": 400, "n_target": 200, "unlabeled_mix_rate": 0.5}
    trained = make("mnist_embed", **options)
    assert trained.metadata["embedder"] == "trained"
    assert probe(trained, 0) > 0.9 and probe(trained, 1) > 0.9
    assert make("mnist_embed", embedder="random", seed=0).metadata["embedder"] == "random"
    with pytest.raises(ValueError, match="embedder must be one of"):
        make("mnist_embed", embedder="pretrained")
    with pytest.raises(ValueError, match="dim must be even"):
        make("mnist_embed", dim=63)


def test_embedding_sets_do_not_depend_on_the_thread_count():
    """The trained embedder's floats would differ with torch's thread count (and so would the
    set); it runs on one thread, and the caller's setting is restored."""
    import torch

    threads = torch.get_num_threads()
    sets = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            sets.append(make("mnist_embed", seed=1, n_unlabeled=64, n_target=64))
            assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(sets[0].x_labeled, sets[1].x_labeled)
    np.testing.assert_array_equal(sets[0].x_target, sets[1].x_target)


# ---- draw=True: the free choices come from the seed ---------------------------------------------

# What each generator's draw records besides the true feature and the unlabeled mix rate.
DRAWN_DIGITS = {
    "toy": (), "vehicle_animal": (), "humans": (),
    "mnist_cc": ("digits",), "mnist_constant_image": ("digits",),
    "mnist_constant_image_random_row": ("digits",), "mnist_uniform_color_random_row": ("digits",),
    "mnist_uniform_color_low_mix_rate": ("digits",), "mnist_sum_noise_level": ("digits",),
    "mnist_embed": ("digits",), "mnist_embed_456": ("digits",),
    "mnist_sum": ("slots",), "mnist_sum_bis": ("slots",),
}  # fmt: skip


def _mix_range(name):
    from hackrobust.data.generators.draws import LOW_MIX_RATE_RANGE, MIX_RATE_RANGE

    return LOW_MIX_RATE_RANGE if name == "mnist_uniform_color_low_mix_rate" else MIX_RATE_RANGE


def _arrays(data):
    return (
        data.x_labeled, data.y_labeled, data.x_unlabeled, data.x_target, data.y_target,
        data.features_unlabeled, data.features_target,
    )  # fmt: skip


def test_draw_covers_every_generator():
    assert set(DRAWN_DIGITS) == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_draw_false_builds_the_default_set_byte_for_byte(name):
    default, undrawn = make(name, seed=2), make(name, seed=2, draw=False)
    for a, b in zip(_arrays(default), _arrays(undrawn), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert undrawn.metadata == default.metadata and "draw" not in undrawn.metadata


@pytest.mark.parametrize("name", CASES)
def test_drawn_set_follows_its_draw(name):
    data = make(name, seed=4, draw=True)
    meta, drawn = data.metadata, data.metadata["draw"]
    assert set(drawn) == {"true_feature", "unlabeled_mix_rate", *DRAWN_DIGITS[name]}
    assert json.loads(json.dumps(meta)) == meta

    # The usual fields describe the drawn set: the answer key follows the drawn true feature.
    assert meta["true_feature"] == drawn["true_feature"] in meta["features"]
    true = meta["true_feature_index"]
    assert meta["features"][true] == drawn["true_feature"]
    np.testing.assert_array_equal(data.y_target, data.features_target[:, true])
    assert data.label_values.tolist() == meta["label_values"]
    assert set(np.unique(data.features_unlabeled)) <= set(meta["label_values"])

    low, high = _mix_range(name)
    rate = drawn["unlabeled_mix_rate"]
    assert low <= rate <= high and meta["unlabeled_mix_rate"] == rate
    assert is_mixed(data.features_unlabeled).sum() == round(rate * SIZES["n_unlabeled"])
    assert is_mixed(data.features_target).sum() == round(0.5 * SIZES["n_target"])

    n_classes = len(CASES[name][2])
    if "digits" in drawn:
        digits = drawn["digits"]
        assert len(set(digits)) == n_classes and digits == sorted(digits)
        assert set(digits) <= set(range(10))
        assert meta["label_values"] == digits  # both sides, or the digit, use these digits
        if "digits" in meta:
            assert meta["digits"] == digits
    if "slots" in drawn:
        slots = drawn["slots"]
        flat = [d for slot in slots for d in slot]
        assert len(slots) == len(meta["features"]) and len(set(flat)) == len(flat)
        assert all(len(slot) == n_classes and slot == sorted(slot) for slot in slots)
        assert meta["slots"] == slots and meta["label_values"] == slots[true]

    again = make(name, seed=4, draw=True)
    assert again.metadata == meta
    np.testing.assert_array_equal(again.x_unlabeled, data.x_unlabeled)


def test_draws_vary_over_seeds_and_stay_in_range():
    """Over seeds 0..9 mnist_sum_bis draws more than one true slot, one set of digit pairs and
    one mix rate; its three slots always use six distinct digits."""
    sizes = {"n_labeled": 20, "n_unlabeled": 40, "n_target": 20}
    metas = [make("mnist_sum_bis", seed=s, draw=True, **sizes).metadata for s in range(10)]
    draws = [m["draw"] for m in metas]
    assert len({d["true_feature"] for d in draws}) >= 2
    assert len({json.dumps(d["slots"]) for d in draws}) >= 2
    assert len({d["unlabeled_mix_rate"] for d in draws}) >= 2
    for meta, drawn in zip(metas, draws, strict=True):
        assert len({digit for slot in drawn["slots"] for digit in slot}) == 6
        assert 0.25 <= drawn["unlabeled_mix_rate"] <= 0.75
        assert meta["true_feature"] == drawn["true_feature"]

    low_mix = [
        make("mnist_uniform_color_low_mix_rate", seed=s, draw=True, **sizes).metadata["draw"]
        for s in range(10)
    ]
    assert all(0.02 <= d["unlabeled_mix_rate"] <= 0.1 for d in low_mix)
    assert {d["true_feature"] for d in low_mix} == {"digit", "color"}
    assert len({tuple(d["digits"]) for d in low_mix}) >= 2


def test_drawn_side_carries_the_labels():
    """A drawn mnist_cc whose true feature is the right digit: on the target rows the right
    half, not the left, separates the two labels."""
    seed = next(
        s
        for s in range(20)
        if make("mnist_cc", seed=s, draw=True).metadata["true_feature"] == "right"
    )
    data = make("mnist_cc", seed=seed, draw=True, n_target=300)
    x, y = data.x_target[:, 0], data.y_target
    low, high = data.metadata["label_values"]

    def gap(half):
        return abs(half[y == low].mean(0) - half[y == high].mean(0)).mean()

    assert gap(x[..., 28:]) > 3 * gap(x[..., :28])


def test_drawn_set_gets_its_own_cache_folder(tmp_path):
    """Through Hydra: dataset.generator.draw=true builds a drawn set, cached apart from the
    default one; its group names use the drawn digits."""
    import hydra

    from hackrobust.data.datamodule import HackathonDataModule

    from helpers import TINY, compose_train

    def dataset(*overrides):
        cfg = compose_train(
            ["dataset=mnist_sum_bis", "dataset.source=digits", *TINY, *overrides], tmp_path
        )
        return hydra.utils.instantiate(cfg.dataset)

    default, drawn, other_seed = (
        dataset(),
        dataset("dataset.generator.draw=true"),
        dataset("dataset.generator.draw=true", "seed=1"),
    )
    assert isinstance(drawn, HackathonDataModule)
    folders = {dm.generated_dir() for dm in (default, drawn, other_seed)}
    assert len(folders) == 3 and None not in folders
    drawn.setup("fit")
    meta = drawn.data.metadata
    assert drawn.generated_dir().exists() and "draw" in meta
    values = meta["label_values"]
    assert drawn.group_names[0] == ",".join(f"{f}={values[0]}" for f in meta["features"])


def test_happyfaces_draws_its_true_feature_and_mix_rate(tmp_path):
    from test_happyfaces import write_fake_happyfaces

    from hackrobust.data.generators import make_happyfaces

    data_dir = write_fake_happyfaces(tmp_path)
    sizes = {"n_labeled": 16, "n_unlabeled": 8, "n_target": 16, "image_size": 16}

    def build(**overrides):
        return make_happyfaces(data_dir=str(data_dir), **sizes, **overrides)

    default, undrawn = build(seed=0), build(seed=0, draw=False)
    for a, b in zip(_arrays(default), _arrays(undrawn), strict=True):
        assert a.tobytes() == b.tobytes()
    assert undrawn.metadata == default.metadata and "draw" not in default.metadata

    drawn_sets = [build(seed=s, draw=True) for s in range(8)]
    assert {d.metadata["true_feature"] for d in drawn_sets} == {"face", "writing"}
    for data in drawn_sets:
        meta = data.metadata
        assert meta["draw"]["true_feature"] == meta["true_feature"]
        assert 0.25 <= meta["draw"]["unlabeled_mix_rate"] == meta["unlabeled_mix_rate"] <= 0.75
        np.testing.assert_array_equal(
            data.y_target, data.features_target[:, meta["true_feature_index"]]
        )
