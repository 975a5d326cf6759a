"""The Rayan challenge path on a tiny synthetic tree: the datamodule, the cached head-only
features, the challenge ResNet50, the export into plain torchvision, and `train` end to end."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import zipfile

import hydra
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from hackrobust.hierarchy import features as features_module
from hackrobust.hierarchy.backbones import efficientnet_lite0, resnet50_checkpoint
from hackrobust.hierarchy.challenge_model import challenge_resnet50
from hackrobust.hierarchy.datamodule import HierarchicalDataModule
from hackrobust.hierarchy.export import (
    ExportChallengeWeights,
    export_resnet50,
    worst_k_curve,
    write_submission_zip,
)
from hackrobust.hierarchy.sampler import HierarchicalBalancedSampler
from hackrobust.hierarchy.synthetic import write_synthetic_tree
from hackrobust.methods import ERM
from hackrobust.methods.groups import training_rows_unaugmented
from hackrobust.metrics.group_accuracy import worst_k_accuracy
from hackrobust.train import train

from helpers import compose_train

SIZE = 32  # ResNet50 runs on 32 px inputs (a 1x1 last feature map): fast on a CPU
NUM_SPECIES, NUM_CLASSES = 12, 4  # the synthetic tree has 4 phyla


def write_split_tree(out_dir, seed=0):
    """train/ (long-tailed) and test/ (2 images per species) of the same species, atomically."""
    tmp = f"{out_dir}.tmp"
    write_synthetic_tree(f"{tmp}/train", NUM_SPECIES, max_images=8, min_images=1, seed=seed)
    write_synthetic_tree(f"{tmp}/test", NUM_SPECIES, max_images=2, min_images=2, seed=seed)
    os.replace(tmp, out_dir)
    return out_dir


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-CPU runner, ResNet50 is many times faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_split_tree(tmp_path_factory.mktemp("inat") / "tree")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A challenge-style checkpoint: torchvision resnet50 with fc = Linear(2048, 4)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Linear(2048, NUM_CLASSES)
    path = tmp_path_factory.mktemp("ckpt") / "resnet50.pth"
    torch.save(net.state_dict(), path)
    return path


def plain_resnet50(state):
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Linear(2048, NUM_CLASSES)
    net.load_state_dict(state, strict=True)
    return net.eval()


def datamodule(path, **kwargs):
    return HierarchicalDataModule(
        path=str(path), image_size=SIZE, batch_size=8, eval_batch_size=16, **kwargs
    )


# --- the datamodule -----------------------------------------------------------------------------


def test_loader_workers_default_to_the_cores_this_process_may_use(tree):
    import os

    assert datamodule(tree, num_workers=None).num_workers == len(os.sched_getaffinity(0))
    assert datamodule(tree, num_workers=3).num_workers == 3


def test_batches_stages_and_labels(tree):
    dm = datamodule(tree)
    dm.setup("fit")
    assert dm.val_stage_names == ["val", "target"]
    assert dm.input_shape == (3, SIZE, SIZE) and dm.num_classes == NUM_CLASSES
    assert np.array_equal(dm.label_values, np.arange(NUM_CLASSES))
    assert dm.num_groups == len(dm.group_names) == NUM_SPECIES
    assert dm.data.has_answer_key and len(dm.data.x_unlabeled) == 0
    assert len(dm.train_set) + len(dm.holdout_set) == len(dm.data.y_labeled)
    assert len(dm.target_set) == len(dm.data.x_target) == 2 * NUM_SPECIES

    batch = next(iter(dm.train_dataloader()["labeled"]))
    assert set(batch) == {"idx", "x", "y", "group"}
    assert batch["x"].shape == (8, 3, SIZE, SIZE)
    assert batch["y"].max() < NUM_CLASSES and batch["group"].max() < NUM_SPECIES
    assert len(dm.val_dataloader()) == 2

    # The test split is numbered like train: each species keeps its class and group id.
    target = next(iter(dm.predict_dataloader()))
    assert torch.equal(target["idx"], torch.arange(16))
    tensors = dm.train_set.tensors
    species_class = dict(zip(tensors["group"].tolist(), tensors["y"].tolist(), strict=True))
    for g, y in zip(target["group"].tolist(), target["y"].tolist(), strict=True):
        assert species_class.get(g, y) == y


def test_training_rows_are_scored_without_augmentation(tree):
    """JTT judges errors on what evaluation sees: the same rows, centre-cropped, every time."""
    dm = datamodule(tree, padding=8)
    dm.setup("fit")
    rows = training_rows_unaugmented(dm)
    assert torch.equal(rows.tensors["idx"], dm.train_set.tensors["idx"])
    torch.manual_seed(0)
    assert torch.equal(rows[0]["x"], rows[0]["x"])
    assert not torch.equal(dm.train_set[0]["x"], dm.train_set[0]["x"])  # random crops


def test_balanced_sampler_and_a_folder_without_test_split(tree):
    dm = datamodule(tree / "train", sampler={"group_temperature": 1.0, "num_samples": 40})
    dm.setup()
    loader = dm.train_dataloader()["labeled"]
    assert isinstance(loader.sampler, HierarchicalBalancedSampler) and len(loader.sampler) == 40
    # Without test/ the held-out rows are the target, numbered from 0.
    assert dm.data.metadata["target_split"] == "holdout"
    assert torch.equal(dm.target_set.tensors["idx"], torch.arange(len(dm.holdout_set)))
    assert torch.equal(dm.target_set.tensors["y"], dm.holdout_set.tensors["y"])


def test_bad_configurations_say_what_to_do(tree, tmp_path):
    with pytest.raises(ValueError, match="model.checkpoint"):
        datamodule(tree, head_only=True, cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        datamodule(tmp_path / "nowhere").setup()
    with pytest.raises(ValueError, match="holdout_fraction"):
        datamodule(tree / "train", holdout_fraction=0).setup()
    with pytest.raises(ValueError, match="unknown sampler keys"):
        datamodule(tree, sampler={"temperature": 1})


def test_generator_writes_the_tree_once_into_the_cache(tmp_path):
    dm = HierarchicalDataModule(
        generator=functools.partial(write_split_tree, seed=3), cache_dir=str(tmp_path)
    )
    dm.prepare_data()
    assert dm.folder.parent == tmp_path and (dm.folder / "test").is_dir()
    dm.prepare_data()  # already there: nothing to do
    dm.setup()
    assert dm.num_groups == NUM_SPECIES


def test_tinyimagenet_config_builds_its_stand_in(tmp_path):
    from test_hierarchy import write_fake_source  # the fake Tiny-ImageNet source of that suite

    (tmp_path / "data").mkdir()
    write_fake_source(tmp_path / "data" / "tinyimagenet_hier")
    cfg = compose_train(
        [
            "dataset=tinyimagenet_hier",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.generator.max_train=6",
            "dataset.generator.min_train=2",
            "dataset.generator.test_per_species=2",
        ],
        tmp_path,
    )
    dm = hydra.utils.instantiate(cfg.dataset)
    dm.prepare_data()
    dm.setup()
    assert dm.folder.parent == tmp_path / "cache"
    assert dm.num_groups == 4 and dm.num_classes == 3 and len(dm.target_set) == 8


# --- the head-only feature cache ----------------------------------------------------------------


def test_features_are_cached_once_and_match_the_backbone(
    tree, checkpoint, tmp_path, monkeypatch, caplog
):
    caplog.set_level("INFO", logger="hackrobust.hierarchy.features")
    dm = datamodule(tree, head_only=True, backbone_checkpoint=str(checkpoint), cache_dir=tmp_path)
    dm.setup()
    # The extraction shows its progress in the log, up to every image of the split.
    n_train = len(dm.taxonomy)
    assert f"Features: {n_train} of {n_train} images" in caplog.text
    files = sorted((tmp_path / "features").glob("*.pt"))
    assert len(files) == 2  # train and test
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert dm.input_shape == (2048,) and dm.train_set.tensors["x"].shape[1] == 2048

    # The cached rows are the backbone's features of the deterministic eval transform.
    backbone = plain_resnet50(torch.load(checkpoint, weights_only=True))
    backbone.fc = nn.Identity()
    row = int(dm.train_set.tensors["idx"][0])
    with Image.open(dm.taxonomy.path(row)) as image:
        x = dm.eval_transform(image.convert("RGB"))
    with torch.no_grad():
        expected = backbone(x[None])[0]
    torch.testing.assert_close(dm.train_set.tensors["x"][0], expected, rtol=1e-4, atol=1e-5)

    def no_extraction(*args, **kwargs):
        raise AssertionError("features extracted again")

    monkeypatch.setattr(features_module, "extract_features", no_extraction)
    again = datamodule(
        tree, head_only=True, backbone_checkpoint=str(checkpoint), cache_dir=tmp_path
    )
    again.setup()
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert torch.equal(again.train_set.tensors["x"], dm.train_set.tensors["x"])
    batch = next(iter(again.train_dataloader()["labeled"]))
    assert batch["x"].shape == (8, 2048)


# --- the model and the export -------------------------------------------------------------------


def test_challenge_model_loads_the_checkpoint_into_trunk_and_heads(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    net = challenge_resnet50((3, SIZE, SIZE), NUM_CLASSES, num_heads=2, checkpoint=checkpoint)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = net.eval()(x)
        expected = plain_resnet50(state)(x)
    torch.testing.assert_close(logits[:, 0], expected)
    torch.testing.assert_close(logits[:, 1], expected)

    wrapped = tmp_path / "wrapped.pth"  # {"state_dict": ...} with DataParallel's prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    head_only = challenge_resnet50((2048,), NUM_CLASSES, checkpoint=wrapped, head_only=True)
    assert isinstance(head_only.trunk, nn.Identity)
    torch.testing.assert_close(head_only.heads.weight, state["fc.weight"])
    with pytest.raises(ValueError, match="classifies 4 classes but the data has 5"):
        challenge_resnet50((3, SIZE, SIZE), 5, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="head_only"):
        challenge_resnet50((3, SIZE, SIZE), NUM_CLASSES, head_only=True)


@pytest.mark.parametrize("channels_last", [False, True])
def test_export_loads_strictly_into_torchvision_with_the_same_logits(
    checkpoint, tmp_path, channels_last
):
    torch.manual_seed(1)
    net = challenge_resnet50(
        (3, SIZE, SIZE), NUM_CLASSES, num_heads=2, channels_last=channels_last
    ).eval()
    conv = net.trunk.layer1[0].conv2.weight  # 3x3: a 1x1 weight is contiguous either way
    assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
    with torch.no_grad():
        net.heads.weight[NUM_CLASSES:] += 1.0  # head 1 differs from head 0
        x = torch.randn(3, 3, SIZE, SIZE)
        expected = net(x)[:, 1]
        exported = plain_resnet50(export_resnet50(net, head=1))
        torch.testing.assert_close(exported(x), expected)

    # Head-only: the backbone comes from the checkpoint, fc from the trained head.
    head_only = challenge_resnet50((2048,), NUM_CLASSES, head_only=True)
    with pytest.raises(ValueError, match="backbone_checkpoint"):
        export_resnet50(head_only, 0)
    state = export_resnet50(head_only, 0, backbone_checkpoint=checkpoint)
    original = torch.load(checkpoint, weights_only=True)
    torch.testing.assert_close(state["layer4.2.conv3.weight"], original["layer4.2.conv3.weight"])
    torch.testing.assert_close(state["fc.weight"], head_only.heads.weight)

    path = write_submission_zip(state, tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["resnet.pth"]
        loaded = torch.load(io.BytesIO(archive.read("resnet.pth")), weights_only=True)
    plain_resnet50(loaded)  # strict
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="never replaced silently"):
        write_submission_zip(export_resnet50(net, 0), tmp_path)
    assert path.read_bytes() == before
    write_submission_zip(state, tmp_path, overwrite=True)  # the same weights, the same bytes
    assert path.read_bytes() == before


def test_full_resnet50_path_takes_a_training_step(tree, checkpoint):
    dm = datamodule(tree)
    dm.setup()
    module = ERM(
        functools.partial(challenge_resnet50, checkpoint=str(checkpoint)),
        functools.partial(torch.optim.SGD, lr=0.01),
        input_shape=dm.input_shape,
        num_classes=dm.num_classes,
    )
    batch = {"labeled": next(iter(dm.train_dataloader()["labeled"]))}
    loss, logits, _ = module.compute_loss(batch)
    loss.backward()
    assert loss.isfinite() and logits.shape == (8, 1, NUM_CLASSES)
    assert module.net.trunk.conv1.weight.grad is not None


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head_only", [True, False], ids=["head_only", "full"])
def test_train_writes_the_submission_zip_and_worst_k_table(head_only, tree, checkpoint, tmp_path):
    cfg = compose_train(
        [
            "experiment=rayan",
            f"dataset.path={tree}",
            f"model.checkpoint={checkpoint}",
            f"dataset.head_only={str(head_only).lower()}",
            "dataset.batch_size=16",
            f"dataset.image_size={SIZE}",
            "dataset.num_workers=0",
            "trainer.max_epochs=1",
        ],
        tmp_path,
    )
    metrics, objects = train(cfg)
    assert {"submission.zip", "resnet.pth", "worst_k.md", "worst_k.json", "worst_k.png"} <= {
        p.name for p in tmp_path.iterdir()
    }
    table = json.loads((tmp_path / "worst_k.json").read_text())
    assert list(table["worst_k"]) == ["10%", "20%", "30%", "40%", "50%"]
    assert "| 10% |" in (tmp_path / "worst_k.md").read_text()

    # The table agrees with the predictions train() wrote ...
    dm = objects["datamodule"]
    probs = np.load(tmp_path / "predictions.npz")["probs"][:, 0]
    hits = torch.from_numpy(probs.argmax(-1)) == dm.target_set.tensors["y"]
    groups = dm.target_set.tensors["group"]
    per_group = torch.stack([hits[groups == g].double().mean() for g in range(dm.num_groups)])
    for name, value in zip(table["worst_k"], worst_k_accuracy(per_group).values(), strict=True):
        assert table["worst_k"][name]["accuracy"] == pytest.approx(value)
    assert table["accuracy"] == pytest.approx(metrics["target/final_acc"])

    # ... and the zipped weights, in plain torchvision, give those predictions on the images.
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        state = torch.load(io.BytesIO(archive.read("resnet.pth")), weights_only=True)
    net = plain_resnet50(state)
    with Image.open(dm.test_taxonomy.path(0)) as image:
        x = dm.eval_transform(image.convert("RGB"))
    with torch.no_grad():
        got = net(x[None]).softmax(-1)[0]
    torch.testing.assert_close(got, torch.from_numpy(probs[0]), rtol=1e-4, atol=1e-5)

    # A second run into the same folder stops before training.
    shutil.rmtree(tmp_path / "checkpoints")
    (tmp_path / "submission.csv").unlink()
    with pytest.raises(FileExistsError, match="never replaced silently"):
        train(cfg)


def test_worst_k_curve_ends_at_the_table_points_and_the_mean():
    per_group = torch.tensor([0.2, float("nan"), 1.0, 0.4, 0.6, 0.8, 0.0, 1.0, 1.0, 1.0, 1.0])
    share, mean = worst_k_curve(per_group)
    assert len(share) == 10 and share[-1] == 1.0
    table = worst_k_accuracy(per_group, (0.1, 0.2, 0.5))
    for fraction, accuracy in table.items():
        assert mean[round(fraction * 10) - 1].item() == pytest.approx(accuracy)
    assert mean[-1].item() == pytest.approx(0.7)  # every group: the mean of per-group accuracy
    assert (mean[1:] >= mean[:-1]).all()


def test_export_callback_refuses_existing_files_before_fit(tmp_path):
    (tmp_path / "submission.zip").write_bytes(b"")
    callback = ExportChallengeWeights(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        callback.setup(None, None, "fit")
    ExportChallengeWeights(tmp_path, overwrite=True).setup(None, None, "fit")


# --- another frozen backbone: EfficientNet-Lite0's ImageNet weights from a package --------------


def test_efficientnet_lite0_features_are_its_pooled_last_layer_on_its_own_scaling(tree, tmp_path):
    backbone = efficientnet_lite0()
    dm = datamodule(tree, head_only=True, backbone=backbone, cache_dir=tmp_path)
    dm.setup()
    assert dm.input_shape == (1280,) and dm.train_set.tensors["x"].shape[1] == 1280

    # The package's classifier, on the same pooled features, gives the package model's logits.
    from efficientnet_lite_pytorch import EfficientNet

    full = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(backbone.weights))
    row = int(dm.train_set.tensors["idx"][0])
    with Image.open(dm.taxonomy.path(row)) as image:
        resize = torchvision.transforms.Compose(
            [torchvision.transforms.Resize(SIZE), torchvision.transforms.CenterCrop(SIZE)]
        )
        pixels = torchvision.transforms.functional.to_tensor(resize(image.convert("RGB")))
    x = (pixels * 255 - 127) / 128  # the official Lite code's scaling
    with torch.no_grad():
        expected = full.eval()(x[None])[0]
        got = full._fc(dm.train_set.tensors["x"][0])
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)

    # Its features are cached apart from another backbone's of the same images.
    keys = {features_module.cache_key(b, dm.taxonomy, dm.feature_transform) for b in
            (backbone, efficientnet_lite0(backbone.weights))}  # fmt: skip
    assert len(keys) == 1
    assert (
        features_module.cache_key(
            resnet50_checkpoint(backbone.weights), dm.taxonomy, dm.feature_transform
        )
        not in keys
    )


def test_linear_heads_on_lite0_features_write_the_worst_k_table_only(tree, tmp_path):
    overrides = [
        "experiment=rayan", f"dataset.path={tree}", "dataset.head_only=true",
        "+dataset/backbone=efficientnet_lite0", "model=linear", f"dataset.image_size={SIZE}",
        "dataset.num_workers=0", "trainer.max_epochs=1",
    ]  # fmt: skip
    # The challenge format needs a ResNet50: asked for, it is refused before training.
    with pytest.raises(ValueError, match="submission=false"):
        train(compose_train(overrides, tmp_path / "refused"))
    assert not (tmp_path / "refused" / "checkpoints").exists()

    cfg = compose_train(
        [*overrides, "callbacks.export_challenge_weights.submission=false"], tmp_path
    )
    metrics, objects = train(cfg)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"worst_k.md", "worst_k.json", "worst_k.png"} <= written
    assert not {"submission.zip", "resnet.pth"} & written
    assert objects["method"].net.heads.in_features == 1280
    table = json.loads((tmp_path / "worst_k.json").read_text())
    assert table["accuracy"] == pytest.approx(metrics["target/final_acc"])


def test_a_held_out_split_by_species_holds_every_species_with_two_images(tree):
    by_class = datamodule(tree, holdout_by="class")
    by_group = datamodule(tree, holdout_by="group")
    by_class.setup(), by_group.setup()
    sets = (by_group.train_set, by_group.holdout_set)
    counts = np.bincount(torch.cat([s.tensors["group"] for s in sets]).numpy())
    held = by_group.holdout_set.tensors["group"].unique().numpy()
    assert set(np.flatnonzero(counts >= 2)) <= set(held)
    assert len(held) > len(by_class.holdout_set.tensors["group"].unique())
    with pytest.raises(ValueError, match="holdout_by"):
        datamodule(tree, holdout_by="genus")
