"""The LightningDataModule of the hierarchical challenge: a folder in the iNat2021 layout.

``path/train`` (or `path` itself when it has no ``train/``) is split, stratified by class, into
training and the held-out "val" stage; ``path/test`` (species-balanced) is the "target" stage,
read for metrics only (without it the held-out split stands in). Batches are dicts
``{"idx", "x", "y", "group"}``: ``y`` is the level-`target_level` class, ``group`` the
level-`group_level` group. With `head_only`, ``x`` is the frozen backbone's cached 2048-d features.

The interface follows `hackrobust.data.datamodule.HackathonDataModule`, and `data` carries what
`hackrobust.train` reads from it, so the same entry point trains on both.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hackrobust.data.datamodule import check_source, stratified_holdout, unwrap_partials
from hackrobust.data.in_memory import TensorDict, pass_through
from hackrobust.hierarchy.backbones import FrozenBackbone, resnet50_checkpoint
from hackrobust.hierarchy.dataset import (
    CHALLENGE_MEAN,
    CHALLENGE_STD,
    HierarchicalDataset,
    challenge_transforms,
)
from hackrobust.hierarchy.features import cached_features
from hackrobust.hierarchy.sampler import HierarchicalBalancedSampler
from hackrobust.hierarchy.taxonomy import Taxonomy

log = logging.getLogger(__name__)

SAMPLER_KEYS = ("class_temperature", "group_temperature", "num_samples", "seed")


@dataclass
class HierarchicalData:
    """What `hackrobust.train` reads as ``datamodule.data``: sizes, labels, the answer key.

    ``x_*`` are image paths (bytes, relative to their split folder); labels are class indices.
    There is no unlabeled set.
    """

    x_labeled: np.ndarray
    y_labeled: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    metadata: dict = field(default_factory=dict)
    x_unlabeled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bytes))
    features_target: None = None

    @property
    def has_answer_key(self) -> bool:
        return bool(len(self.y_target)) and bool((self.y_target >= 0).all())


class ImageSubset(Dataset):
    """Rows `rows` of a `Taxonomy`, read as images, with the given idx, class and group.

    `tensors` holds the labels (no ``x``), like a `TensorDict`'s, for code that scores them.
    """

    def __init__(self, taxonomy, rows, idx, y, group, transform: Callable):
        self.images = HierarchicalDataset(taxonomy, transform=transform)
        self.rows = np.asarray(rows)
        self.tensors = {
            "idx": torch.as_tensor(idx),
            "y": torch.as_tensor(y),
            "group": torch.as_tensor(group),
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        item = self.images[int(self.rows[index])]
        return {"x": item["x"], **{k: int(v[index]) for k, v in self.tensors.items()}}


class HierarchicalDataModule(L.LightningDataModule):
    """Reads `path` (iNat2021 layout) or writes it once with `generator` into `cache_dir`.

    Args:
        path: a folder holding ``train/`` and optionally ``test/``, or the species folders.
        generator: a Hydra partial called with ``out_dir=`` that writes such a folder atomically
            (e.g. `build_tinyimagenet_tree`); kept in `cache_dir`, one folder per configuration.
        target_level, group_level: the class level (2: phylum) and the group level (7: species).
        image_size, padding, mean, std: the challenge transforms; training crops at random
            (`augment`), evaluation and feature extraction centre-crop.
        holdout_fraction, split_seed: the stratified held-out "val" share of train.
        holdout_by: what the held-out split is stratified by: "class", or "group" (every species
            with two images or more gives at least one: what DFR's group-balanced refit needs).
        sampler: ``{class_temperature, group_temperature, num_samples, seed}``; when a
            temperature is set, training draws with `HierarchicalBalancedSampler` (an unset one
            is 0, natural frequencies), else it shuffles. Under DDP the Trainer needs
            ``use_distributed_sampler=False``: the loaders shard themselves.
        head_only, backbone, backbone_checkpoint: serve a frozen backbone's features, cached in
            `cache_dir`: `backbone` (a `FrozenBackbone`, e.g. EfficientNet-Lite0's, read with its
            own normalisation), else the ResNet50 of `backbone_checkpoint` (a torchvision
            resnet50 state_dict; see `hackrobust.hierarchy.backbones`).
        feature_device: where features are extracted (default: this process's GPU, else CPU).
        num_workers, pin_memory, persistent_workers: image loaders (num_workers None: the CPU
            cores this process may use; pin_memory None: on CUDA; persistent_workers None: when
            there are workers). In-memory features use none.
        on_error, verify: passed to `Taxonomy.from_folder`.
    """

    def __init__(
        self,
        path: str | None = None,
        generator: Callable | None = None,
        cache_dir: str | None = None,
        target_level: int = 2,
        group_level: int = 7,
        image_size: int = 224,
        padding: int = 4,
        mean: Sequence[float] = CHALLENGE_MEAN,
        std: Sequence[float] = CHALLENGE_STD,
        augment: bool = True,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        holdout_fraction: float = 0.1,
        split_seed: int = 0,
        holdout_by: str = "class",
        sampler: Mapping | None = None,
        head_only: bool = False,
        backbone: FrozenBackbone | None = None,
        backbone_checkpoint: str | None = None,
        feature_device: str | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        on_error: str = "raise",
        verify: bool = False,
    ):
        super().__init__()
        sampler = _checked_options(path, generator, cache_dir, holdout_fraction, sampler, head_only)
        self.path = Path(path).expanduser() if path is not None else None
        self.generator = generator
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.target_level, self.group_level = target_level, group_level
        transform = dict(size=image_size, padding=padding, mean=tuple(mean), std=tuple(std))
        self.train_transform = challenge_transforms(train=augment, **transform)
        self.eval_transform = challenge_transforms(train=False, **transform)
        self.image_size = image_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.holdout_fraction, self.split_seed = holdout_fraction, split_seed
        if holdout_by not in ("class", "group"):
            raise ValueError(f"holdout_by is 'class' or 'group', got {holdout_by!r}")
        self.holdout_by = holdout_by
        self.sampler = sampler
        self.head_only = head_only
        self.backbone = None
        if head_only:
            self.backbone = backbone or resnet50_checkpoint(backbone_checkpoint)
            # The evaluation transform, in the backbone's own normalisation where it has one.
            own = self.backbone.mean and {"mean": self.backbone.mean, "std": self.backbone.std}
            self.feature_transform = challenge_transforms(train=False, **transform | (own or {}))
        self.feature_device = feature_device
        self.num_workers = len(os.sched_getaffinity(0)) if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        self.on_error, self.verify = on_error, verify
        self.with_unlabeled = False  # set by methods; there is no unlabeled set here
        self.data: HierarchicalData | None = None

    # ---- where the data comes from -------------------------------------------------------------

    def generated_dir(self) -> Path | None:
        """The cache folder of this generator configuration (None without a generator)."""
        if self.generator is None:
            return None
        func, keywords = unwrap_partials(self.generator)
        spec = {"func": f"{func.__module__}.{func.__qualname__}", "keywords": keywords}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
        return self.cache_dir / f"{func.__name__.removeprefix('build_')}-{digest[:12]}"

    @property
    def folder(self) -> Path:
        """The dataset folder on disk."""
        return self.path if self.path is not None else self.generated_dir()

    def prepare_data(self) -> None:
        target = self.generated_dir()
        if target is None or target.exists():
            return
        log.info("Writing the dataset into %s", target)
        # FileExistsError: a parallel job wrote the same folder first; both are identical.
        with contextlib.suppress(FileExistsError):
            self.generator(out_dir=target)

    def _splits(self) -> tuple[Taxonomy, Taxonomy | None]:
        root = self.folder
        if not root.is_dir():
            raise FileNotFoundError(
                f"{root} is not a directory: dataset.path must be a folder holding train/ (and "
                "optionally test/) with one NNNNN_Kingdom_..._epithet folder per species"
            )
        has_train = (root / "train").is_dir()
        read = functools.partial(Taxonomy.from_folder, on_error=self.on_error, verify=self.verify)
        train = read(root / "train" if has_train else root)
        test = read(root / "test") if has_train and (root / "test").is_dir() else None
        return train, test

    # ---- tensors -------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        if self.generator is not None and not self.folder.exists():
            self.prepare_data()
        train, test = self._splits()
        self.taxonomy, self.test_taxonomy = train, test
        level, group_level = self.target_level, self.group_level
        self.class_names = train.class_names(level)
        self.group_names, group_ids = _group_ids((train, test), group_level)
        y = train.labels(level)
        group = _renumber(train, group_level, group_ids)
        strata = y if self.holdout_by == "class" else group
        holdout = stratified_holdout(strata, self.holdout_fraction, self.split_seed)
        test_labels = self._test_labels(train, test, group_ids, holdout)
        x_target = self._make_sets(train, test, test_labels, y, group, holdout)
        self.label_values = np.arange(train.num_classes(level))
        self.data = HierarchicalData(
            x_labeled=train.paths,
            y_labeled=np.asarray(y),
            x_target=x_target,
            y_target=self.target_set.tensors["y"].numpy(),
            metadata={
                "source": str(self.folder),
                "target_level": level,
                "group_level": group_level,
                "class_names": self.class_names,
                "target_split": "test" if test is not None else "holdout",
            },
        )
        self._log_sizes()

    def _test_labels(self, train, test, group_ids, holdout) -> tuple[np.ndarray, ...] | None:
        """The test split's (class, group) ids, numbered as train's; without a test split, None
        (the held-out rows stand in; an error when there are none)."""
        if test is not None:
            class_ids = {tuple(r): i for i, r in enumerate(train.names[self.target_level - 1])}
            test_y = _renumber(test, self.target_level, class_ids)
            return test_y, _renumber(test, self.group_level, group_ids)
        if holdout.any():
            log.warning("No test/ split under %s: the held-out split is the target", self.folder)
            return None
        raise ValueError(
            f"{self.folder} has no test/ split and holdout_fraction is 0: nothing to "
            "evaluate; add a test/ folder or set dataset.holdout_fraction > 0"
        )

    def _make_sets(self, train, test, test_labels, y, group, holdout) -> np.ndarray:
        """Set `train_set`, `train_eval_set`, `holdout_set` and `target_set`, as images or as the
        backbone's features; return the target rows' image paths."""
        features = self._features(train) if self.head_only else None
        train_rows, val_rows = np.flatnonzero(~holdout), np.flatnonzero(holdout)
        self.train_set = _subset(
            train, features, train_rows, train_rows, y, group, self.train_transform
        )
        # The same rows without augmentation, for methods that score the training set (JTT);
        # cached features are never augmented, so they are served as they are.
        self.train_eval_set = self.train_set
        if features is None:
            self.train_eval_set = _subset(
                train, None, train_rows, train_rows, y, group, self.eval_transform
            )
        self.holdout_set = _subset(
            train, features, val_rows, val_rows, y, group, self.eval_transform
        )
        if test is None:  # the held-out rows, numbered from 0 (predictions are placed by idx)
            target = (train, features, val_rows, np.arange(len(val_rows)), y, group)
        else:
            test_features = self._features(test) if self.head_only else None
            everything = np.arange(len(test))
            target = (test, test_features, everything, everything, *test_labels)
        self.target_set = _subset(*target, self.eval_transform)
        return target[0].paths[target[2]]

    def _log_sizes(self) -> None:
        """Log the class and group counts and the size of every set."""
        log.info(
            "%s: %d classes at level %d, %d groups at level %d; train %d, val %d, target %d",
            self.folder,
            self.num_classes,
            self.target_level,
            self.num_groups,
            self.group_level,
            len(self.train_set),
            len(self.holdout_set),
            len(self.target_set),
        )

    def _features(self, taxonomy: Taxonomy) -> torch.Tensor:
        return cached_features(
            taxonomy,
            self.backbone,
            self.feature_transform,
            self.cache_dir,
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            device=self.feature_device,
        )

    # ---- what the methods need to know ---------------------------------------------------------

    @property
    def default_score(self) -> float:
        """The score of not submitting (the challenge has none: 0)."""
        return float(self.data.metadata.get("default_score", 0.0))

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.head_only:
            return (self.backbone.feature_dim,)
        return (3, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return len(self.label_values)

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    @property
    def val_stage_names(self) -> list[str]:
        """Names of the validation dataloaders, in order: "val" (held out of train), "target"."""
        return (["val"] if len(self.holdout_set) else []) + ["target"]

    def to_class_index(self, labels: np.ndarray) -> np.ndarray:
        """Labels are class indices already; checks they are in range."""
        labels = np.asarray(labels)
        if len(labels) and not (labels.min() >= 0 and labels.max() < self.num_classes):
            raise ValueError(f"labels must be class indices in [0, {self.num_classes})")
        return labels.astype(np.int64)

    # ---- loaders -------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, batch_size: int, train: bool = False) -> DataLoader:
        in_memory = isinstance(dataset, TensorDict)
        workers = 0 if in_memory else self.num_workers
        sampler = self._train_sampler(dataset) if train else _eval_sampler(dataset)
        persistent = workers > 0 if self.persistent_workers is None else self.persistent_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            collate_fn=pass_through if in_memory else None,
            num_workers=workers,
            pin_memory=self.pin_memory and not in_memory,
            persistent_workers=persistent and workers > 0,
        )

    def _train_sampler(self, dataset: Dataset):
        temperatures = [self.sampler.get(f"{k}_temperature") for k in ("class", "group")]
        if any(t is not None for t in temperatures):
            labels = dataset.tensors
            return HierarchicalBalancedSampler(
                labels["y"],
                labels["group"],
                num_samples=self.sampler.get("num_samples"),
                class_temperature=temperatures[0] or 0.0,
                group_temperature=temperatures[1] or 0.0,
                seed=self.sampler.get("seed") or 0,
            )
        if _world_size() > 1:
            return DistributedSampler(dataset, shuffle=True, seed=self.split_seed)
        return None

    def train_dataloader(self) -> dict[str, DataLoader]:
        return {"labeled": self._loader(self.train_set, self.batch_size, train=True)}

    def val_dataloader(self) -> list[DataLoader]:
        sets = {"val": self.holdout_set, "target": self.target_set}
        return [self._loader(sets[name], self.eval_batch_size) for name in self.val_stage_names]

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.target_set, self.eval_batch_size)


def _checked_options(
    path: str | None,
    generator: Callable | None,
    cache_dir: str | None,
    holdout_fraction: float,
    sampler: Mapping | None,
    head_only: bool,
) -> dict:
    """Refuse a configuration the datamodule cannot serve, saying which setting to change;
    return the sampler settings as a dict."""
    check_source(path, generator, holdout_fraction, "the iNat2021 layout")
    sampler = dict(sampler or {})
    if unknown := set(sampler) - set(SAMPLER_KEYS):
        raise ValueError(f"unknown sampler keys {sorted(unknown)}; use {SAMPLER_KEYS}")
    if (head_only or generator is not None) and not cache_dir:
        raise ValueError("head_only and generator keep files in dataset.cache_dir: set it")
    return sampler


def _subset(taxonomy, features, rows, idx, y, group, transform) -> Dataset:
    """Rows `rows` of a split (y and group indexed by split row), as images or as features."""
    if features is None:
        return ImageSubset(taxonomy, rows, idx, y[rows], group[rows], transform)
    labels = {"idx": idx, "y": y[rows], "group": group[rows]}
    return TensorDict(
        x=features[torch.as_tensor(rows)], **{k: torch.as_tensor(v) for k, v in labels.items()}
    )


def _group_ids(
    splits: tuple[Taxonomy, Taxonomy | None], level: int
) -> tuple[list[str], dict[tuple, int]]:
    """Names and ids of the level-`level` groups of every split (None: absent), in sorted
    root-to-node order."""
    rows = sorted({tuple(r) for t in splits if t is not None for r in t.names[level - 1]})
    return ["_".join(row) for row in rows], {row: i for i, row in enumerate(rows)}


def _renumber(taxonomy: Taxonomy, level: int, ids: dict[tuple, int]) -> np.ndarray:
    """(N,) each image's level-`level` node as an id of `ids` (keyed by root-to-node names)."""
    rows = [tuple(r) for r in taxonomy.names[level - 1]]
    missing = [row for row in rows if row not in ids]
    if missing:
        raise ValueError(
            f"{taxonomy.root} has {len(missing)} level-{level} class(es) the training split "
            f"lacks, e.g. {'_'.join(missing[0])}: every test class must occur in train/"
        )
    return np.array([ids[row] for row in rows], dtype=np.int64)[taxonomy.labels(level)]


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _eval_sampler(dataset: Dataset):
    """Shards evaluation under DDP without the padding rows a `DistributedSampler` repeats."""
    return UnrepeatedDistributedSampler(dataset, shuffle=False) if _world_size() > 1 else None
