"""HierarchicalBalancedSampler: exact length, seeding, temperatures, and DDP shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hackrobust.hierarchy.sampler import HierarchicalBalancedSampler, hierarchical_probabilities

# class 0: groups of 500, 50 and 5; class 1: 100 and 10; class 2: one group of 2
GROUP_SIZES = {0: (0, 500), 1: (0, 50), 2: (0, 5), 3: (1, 100), 4: (1, 10), 5: (2, 2)}
GROUPS = np.repeat(list(GROUP_SIZES), [n for _, n in GROUP_SIZES.values()])
CLASSES = np.array([GROUP_SIZES[g][0] for g in GROUPS])
N = len(GROUPS)
DRAWS = 200_000


def draw(**options) -> np.ndarray:
    return np.array(list(HierarchicalBalancedSampler(CLASSES, GROUPS, **options)))


def frequencies(labels: np.ndarray, minlength: int) -> np.ndarray:
    return np.bincount(labels, minlength=minlength) / len(labels)


def within_class(indices: np.ndarray, cls: int) -> np.ndarray:
    groups = GROUPS[indices][CLASSES[indices] == cls]
    present = [g for g, (c, _) in GROUP_SIZES.items() if c == cls]
    return np.bincount(groups, minlength=len(GROUP_SIZES))[present] / len(groups)


@pytest.mark.parametrize(
    "num_samples, replicas, expected", [(None, 1, N), (1000, 1, 1000), (1000, 3, 334), (1, 4, 1)]
)
def test_yields_exactly_len(num_samples, replicas, expected):
    for rank in range(replicas):
        sampler = HierarchicalBalancedSampler(
            CLASSES, GROUPS, num_samples=num_samples, num_replicas=replicas, rank=rank
        )
        indices = list(sampler)
        assert len(sampler) == len(indices) == expected
        assert all(isinstance(i, int) and 0 <= i < N for i in indices)
    loader = torch.utils.data.DataLoader(range(N), batch_size=64, sampler=sampler, drop_last=False)
    assert sum(len(batch) for batch in loader) == expected


def test_reproducible_per_seed_and_epoch():
    sampler = HierarchicalBalancedSampler(CLASSES, GROUPS, seed=7)
    first = list(sampler)
    assert first == list(sampler) == draw(seed=7).tolist()
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert draw(seed=8).tolist() != first


def test_temperature_zero_is_the_natural_distribution():
    probabilities = hierarchical_probabilities(CLASSES, GROUPS, 0.0, 0.0)
    np.testing.assert_allclose(probabilities, 1 / N)
    indices = draw(num_samples=DRAWS, class_temperature=0.0, group_temperature=0.0)
    natural = np.bincount(CLASSES) / N
    np.testing.assert_allclose(frequencies(CLASSES[indices], 3), natural, atol=0.006)
    np.testing.assert_allclose(within_class(indices, 0), [500 / 555, 50 / 555, 5 / 555], atol=0.006)


def test_temperature_one_balances_classes_and_species_within_class():
    indices = draw(num_samples=DRAWS)  # the defaults: both temperatures 1
    np.testing.assert_allclose(frequencies(CLASSES[indices], 3), [1 / 3] * 3, atol=0.006)
    np.testing.assert_allclose(within_class(indices, 0), [1 / 3] * 3, atol=0.006)
    np.testing.assert_allclose(within_class(indices, 1), [1 / 2] * 2, atol=0.006)
    # inside a group the examples stay equally likely
    probabilities = hierarchical_probabilities(CLASSES, GROUPS)
    np.testing.assert_allclose(probabilities[GROUPS == 0], 1 / 3 / 3 / 500)
    np.testing.assert_allclose(probabilities[GROUPS == 5], 1 / 3 / 2)


def test_temperatures_act_separately():
    indices = draw(num_samples=DRAWS, class_temperature=1.0, group_temperature=0.0)
    np.testing.assert_allclose(frequencies(CLASSES[indices], 3), [1 / 3] * 3, atol=0.006)
    np.testing.assert_allclose(within_class(indices, 1), [100 / 110, 10 / 110], atol=0.006)
    half = hierarchical_probabilities(CLASSES, GROUPS, 0.5, 0.0)
    class_mass = np.bincount(CLASSES, weights=half)
    np.testing.assert_allclose(class_mass, np.sqrt([555, 110, 2]) / np.sqrt([555, 110, 2]).sum())


def test_two_replicas_shard_one_global_draw():
    options = {"seed": 3, "num_samples": 666}
    single = draw(**options, num_replicas=1, rank=0)
    shards = [draw(**options, num_replicas=2, rank=rank) for rank in range(2)]
    sampler = HierarchicalBalancedSampler(CLASSES, GROUPS, **options, num_replicas=2, rank=0)
    global_draw = sampler.global_draw()
    for rank, shard in enumerate(shards):
        np.testing.assert_array_equal(shard, global_draw[rank::2])  # disjoint positions
    interleaved = np.empty(2 * len(shards[0]), dtype=np.int64)
    interleaved[0::2], interleaved[1::2] = shards
    np.testing.assert_array_equal(interleaved, single)  # their union is the 1-replica draw


def test_odd_length_is_padded_with_the_start_of_the_draw():
    single = draw(seed=5, num_samples=7)
    shards = [draw(seed=5, num_samples=7, num_replicas=2, rank=rank) for rank in range(2)]
    assert [len(s) for s in shards] == [4, 4]
    interleaved = np.empty(8, dtype=np.int64)
    interleaved[0::2], interleaved[1::2] = shards
    np.testing.assert_array_equal(interleaved, np.append(single, single[0]))


def test_groups_spanning_classes_and_tensor_labels():
    classes = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    groups = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1])  # group 0 in both classes
    probabilities = hierarchical_probabilities(classes.numpy(), groups.numpy())
    np.testing.assert_allclose(
        probabilities, [1 / 8, 1 / 8, 1 / 4, 1 / 16, 1 / 16, 1 / 16, 1 / 16, 1 / 4]
    )
    assert len(list(HierarchicalBalancedSampler(classes, groups))) == 8


def test_defaults_to_one_replica_without_torch_distributed():
    sampler = HierarchicalBalancedSampler(CLASSES, GROUPS)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"group_labels": GROUPS[:-1]}, "one class and one group per example"),
        ({"class_labels": CLASSES.astype(float)}, "must hold integers"),
        ({"class_labels": CLASSES[:, None]}, "1-D"),
        ({"num_replicas": 2, "rank": 2}, "rank must be in"),
        ({"num_samples": 0}, "at least 1"),
        ({"seed": -1}, "non-negative"),
        ({"class_temperature": float("nan")}, "finite"),
    ],
)
def test_bad_arguments_say_what_is_wrong(options, message):
    arguments = {"class_labels": CLASSES, "group_labels": GROUPS, **options}
    with pytest.raises(ValueError, match=message):
        HierarchicalBalancedSampler(**arguments)
