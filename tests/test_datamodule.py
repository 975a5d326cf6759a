"""The datamodule: in-memory batches, held-out split, groups, the generated-dataset cache."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from hackrobust.data.datamodule import HackathonDataModule
from hackrobust.data.generators import make_mnist_sum_bis, make_toy
from hackrobust.data.in_memory import TensorDict

TOY = functools.partial(make_toy, seed=0, n_labeled=100, n_unlabeled=150, n_target=80)


@pytest.fixture
def toy(tmp_path):
    dm = HackathonDataModule(generator=TOY, cache_dir=str(tmp_path), batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_are_built_whole_without_per_item_calls(toy, monkeypatch):
    def per_item(*_):
        raise AssertionError("the loader fetched a single item")

    monkeypatch.setattr(TensorDict, "__getitem__", per_item)
    toy.with_unlabeled = True
    loaders = toy.train_dataloader()
    labeled, unlabeled = next(iter(loaders["labeled"])), next(iter(loaders["unlabeled"]))
    assert set(labeled) == {"idx", "x", "y", "group"} and labeled["x"].shape == (16, 2)
    assert (unlabeled["y"] == -1).all() and len(unlabeled["idx"]) == 16


def test_unlabeled_batches_can_also_read_the_target_inputs_but_never_their_labels(toy):
    toy.with_unlabeled = True
    assert len(toy.train_dataloader()["unlabeled"].dataset) == 150
    toy.unlabeled_with_target = True
    rows = toy.train_dataloader()["unlabeled"].dataset.tensors
    assert len(rows["idx"]) == 150 + 80 and rows["idx"].unique().numel() == 230
    torch.testing.assert_close(rows["x"][150:], toy.target_set.tensors["x"])
    assert (rows["y"] == -1).all() and (toy.target_set.tensors["y"] >= 0).all()
    assert len(toy.unlabeled_set) == 150  # the unlabeled set itself is unchanged


def test_holdout_is_stratified_and_disjoint(toy):
    train, holdout = toy.train_set.tensors, toy.holdout_set.tensors
    assert len(holdout["idx"]) == 10 and len(train["idx"]) == 90
    assert not set(train["idx"].tolist()) & set(holdout["idx"].tolist())
    assert torch.bincount(holdout["y"]).tolist() == [5, 5]
    assert toy.val_stage_names == ["val", "target"]


def test_predict_keeps_target_order_and_groups_follow_the_answer_key(toy):
    batches = list(toy.predict_dataloader())
    assert torch.cat([b["idx"] for b in batches]).tolist() == list(range(80))
    groups = toy.target_set.tensors["group"].numpy()
    features = toy.to_class_index(toy.data.features_target.reshape(-1)).reshape(-1, 2)
    np.testing.assert_array_equal(groups, features[:, 0] * 2 + features[:, 1])
    assert toy.group_names == ["x=0,y=0", "x=0,y=1", "x=1,y=0", "x=1,y=1"]


def test_inputs_are_standardised_with_labeled_and_unlabeled_statistics(toy):
    x = torch.cat([toy.train_set.tensors["x"], toy.holdout_set.tensors["x"]])
    both = torch.cat([x, toy.unlabeled_set.tensors["x"]])
    torch.testing.assert_close(both.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(both.std(0), torch.ones(2), atol=1e-5, rtol=0)


def test_generated_dataset_is_cached_per_configuration(tmp_path):
    calls = []

    def counting(**kwargs):
        calls.append(kwargs)
        return TOY(**kwargs)

    for _ in range(2):
        dm = HackathonDataModule(
            generator=functools.partial(counting, seed=1), cache_dir=str(tmp_path)
        )
        dm.prepare_data()
        dm.setup()
    assert len(calls) == 1 and len(list(tmp_path.iterdir())) == 1
    other = HackathonDataModule(
        generator=functools.partial(counting, seed=2), cache_dir=str(tmp_path)
    )
    other.prepare_data()
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 2
    # A generator whose output changed bumps its cache_version: a new folder, drawn anew.
    counting.cache_version = 2
    bumped = HackathonDataModule(
        generator=functools.partial(counting, seed=2), cache_dir=str(tmp_path)
    )
    bumped.prepare_data()
    assert len(calls) == 3 and len(list(tmp_path.iterdir())) == 3


def test_source_is_forwarded_to_the_generator(tmp_path):
    generator = functools.partial(
        make_mnist_sum_bis, seed=0, n_labeled=30, n_unlabeled=30, n_target=30
    )
    dm = HackathonDataModule(generator=generator, source="digits", cache_dir=str(tmp_path))
    dm.setup()
    assert dm.data.metadata["source"] == "digits" and dm.input_shape == (1, 28, 28)
    assert len(dm.group_names) == 8  # three binary features


def test_exactly_one_of_path_and_generator():
    with pytest.raises(ValueError, match="exactly one"):
        HackathonDataModule()
    with pytest.raises(ValueError, match="exactly one"):
        HackathonDataModule(path="x", generator=TOY)


def test_a_parallel_writer_of_the_same_dataset_is_not_an_error(tmp_path, monkeypatch):
    """Two runs generating one configuration at once: the loser keeps the winner's folder."""
    import tempfile

    from hackrobust.data import layout
    from hackrobust.utils import folders

    dm = HackathonDataModule(generator=TOY, cache_dir=str(tmp_path))
    target = dm.generated_dir()
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp_then_lose_the_race(*args, **kwargs):
        made = real_mkdtemp(*args, **kwargs)
        monkeypatch.setattr(folders.tempfile, "mkdtemp", real_mkdtemp)
        layout.save_hackathon_dir(TOY(), target)  # the other process finishes first
        return made

    monkeypatch.setattr(folders.tempfile, "mkdtemp", mkdtemp_then_lose_the_race)
    dm.prepare_data()
    dm.setup()
    assert len(dm.data.x_target) == 80
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary folder left


def test_a_hackathon_folder_without_metadata_scores_its_exercises_default(tmp_path):
    """The official folders carry no metadata.json: the default score of not submitting then
    follows the exercise the labels come from (0.5 for the hackathon's ids 888 and 999)."""
    from hackrobust.data.layout import save_hackathon_dir

    folder = save_hackathon_dir(TOY(), tmp_path / "official")
    (folder / "metadata.json").unlink()
    dm = HackathonDataModule(path=str(folder), batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    assert [dm.default_score_for(e) for e in (888, 999, 3, None)] == [0.5, 0.5, 0.8, 0.8]
    assert dm.default_score == 0.8
    generated = HackathonDataModule(generator=TOY, cache_dir=str(tmp_path), batch_size=16)
    generated.prepare_data()
    generated.setup("fit")
    assert generated.default_score_for(888) == 0.8  # its metadata says so


def test_the_default_score_rule_names_an_exercise_by_dataset_or_by_id():
    """One rule serves the datamodule (exercise ids), the generators and the studies (dataset
    names): 0.5 for vehicle_animal (888) and humans (999), 0.8 for everything else."""
    from hackrobust.data.exercises import default_score

    hard = ["vehicle_animal", "humans", 888, 999, "888"]
    assert [default_score(e) for e in hard] == [0.5] * 5
    assert [default_score(e) for e in ["mnist_cc", 3, "3", None]] == [0.8] * 4
