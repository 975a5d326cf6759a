"""Pretraining the trunk as a denoising autoencoder on the run's own inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hackrobust.train import train
from hackrobust.training import self_training
from hackrobust.training.pretrain import (
    all_inputs,
    decoder_for,
    pretrain_trunk,
    trunk_state,
    trunks_of,
)

from helpers import build_run, compose_train, offline_overrides, student_recipe, trainer_factory


@pytest.mark.parametrize(
    "shape", [(1, 28, 28), (1, 28, 56), (3, 32, 64), (1, 64, 64), (3, 224, 224), (64,)]
)
def test_the_decoder_rebuilds_every_input_shape_from_a_small_grid(shape):
    decoder = decoder_for(shape, feature_dim=128)
    assert decoder(torch.zeros(2, 128)).shape == (2, *shape)
    # The linear map goes to at most 64 channels x 8 x 8, so large images stay cheap.
    assert sum(p.numel() for p in decoder.parameters()) < 1_500_000


def test_a_model_without_a_trunk_or_data_without_inputs_is_refused_clearly():
    with pytest.raises(ValueError, match="needs a model with a `trunk`.*model=auto"):
        trunks_of(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="in-memory inputs of a hackathon dataset.*drop pretrain"):
        all_inputs(object())


@pytest.mark.parametrize(
    ("dataset", "method_name"),
    [
        ("mnist_cc", "dbat"),  # two members, each with its trunk
        ("mnist_constant_image_random_row", "divdis"),  # a trunk symmetrised over the halves
        ("mnist_embed", "divdis"),  # vectors: an MLP trunk
    ],
)
def test_pretraining_lowers_the_reconstruction_error_and_starts_every_trunk_alike(
    dataset, method_name, tmp_path
):
    overrides = [
        *offline_overrides(dataset, tmp_path),
        f"method={method_name}",
        "model.cnn_width=8",
    ]
    cfg, datamodule, method = build_run(overrides, tmp_path)
    first, *others = trunks_of(method.net)
    before = {k: v.clone() for k, v in first.state_dict().items()}

    summary = pretrain_trunk(trainer_factory(cfg), datamodule, method.net, epochs=6)

    n_inputs = sum(len(s) for s in (datamodule.train_set, datamodule.holdout_set,
                                    datamodule.unlabeled_set, datamodule.target_set))  # fmt: skip
    assert summary["inputs"] == n_inputs  # labeled, held-out, unlabeled and target rows
    losses = summary["epoch_losses"]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    after = first.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for trunk in others:  # D-BAT's members all start from it
        for name, value in trunk.state_dict().items():
            assert torch.equal(value, after[name])


def test_a_run_pretrains_the_trunk_and_the_student_starts_from_it(tmp_path, monkeypatch):
    overrides = [
        *offline_overrides("mnist_cc", tmp_path),
        "method=divdis", "query=oracle", "trainer.max_epochs=1", "logger=none",
        "model.cnn_width=8", "pretrain=autoencoder", "pretrain.epochs=2",
        "self_training=pseudo_label",
    ]  # fmt: skip
    pretrained, students = [], []
    real_state, real_fit_student = trunk_state, self_training._fit_student

    def spy_state(net):
        pretrained.append(real_state(net))
        return pretrained[-1]

    def spy_fit_student(recipe, datamodule, train_set, state=None, *rest):
        student = real_fit_student(recipe, datamodule, train_set, state, *rest)
        students.append(state)
        return student

    monkeypatch.setattr("hackrobust.stages.pretrain.trunk_state", spy_state)
    monkeypatch.setattr(self_training, "_fit_student", spy_fit_student)
    metrics, objects = train(compose_train(overrides, tmp_path))

    assert 0 < metrics["pretrain/loss"] < float("inf")
    assert len(pretrained) == 1 and students == pretrained


def test_the_student_starts_from_the_given_trunk(tmp_path):
    overrides = [*offline_overrides("toy", tmp_path), "trainer.max_epochs=0"]
    cfg, datamodule, method = build_run(overrides, tmp_path)
    state = {k: torch.full_like(v, 0.5) for k, v in trunk_state(method.net).items()}
    student = self_training._fit_student(
        student_recipe(cfg), datamodule, datamodule.train_set, state
    )
    for name, value in trunks_of(student.net)[0].state_dict().items():
        assert torch.equal(value, state[name])
