"""The LightningDataModule of every hackathon42 dataset: a folder, or a generator of one.

Batches are dicts. Training yields `{"labeled": batch}` and, for methods that use it,
`{"labeled": batch, "unlabeled": batch}`; each batch is `{"idx", "x", "y", "group"}` with `y` a
class index (-1 where unknown) and `group` the row's feature combination (-1 where unknown).
The target set's answer key, when there is one, is used for reading metrics only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, WeightedRandomSampler

from hackrobust.data.exercises import default_score
from hackrobust.data.in_memory import TensorDict, pass_through
from hackrobust.data.layout import HackathonData, save_hackathon_dir
from hackrobust.data.loader import load_hackathon_dir

log = logging.getLogger(__name__)

UNKNOWN = -1


class HackathonDataModule(L.LightningDataModule):
    """Loads `path` (hackathon42 layout) or writes it once with `generator` into `cache_dir`.

    Args:
        path: a dataset folder in the hackathon42 layout.
        generator: a `make_<name>` function (a Hydra partial) that returns `HackathonData`.
        source: the image source the generator draws from (e.g. "mnist" or the offline "digits").
        cache_dir: where generated datasets are kept, one folder per generator configuration.
        holdout_fraction: share of the labeled set held out (stratified) for validation.
        normalize: standardise inputs with statistics of the labeled and unlabeled sets.
        symmetry: an input transformation the label is known to ignore (e.g. "swap_halves" when
            the dataset's description says the two images sit on random sides); `model=auto`
            builds it into the trunk.
        unlabeled_with_target: methods that read unlabeled batches also read the target inputs
            (never their labels). Transductive, as the hackathon allows: it raises the share of
            decorrelated rows where the unlabeled set has few.
        pretrained_allowed: whether the set's rules allow a pretrained model (the hackathon's
            do only on humans); read by the model config, as `symmetry`.
    """

    def __init__(
        self,
        path: str | None = None,
        generator: Callable[..., HackathonData] | None = None,
        source: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 128,
        unlabeled_batch_size: int | None = None,
        eval_batch_size: int = 1024,
        holdout_fraction: float = 0.1,
        normalize: bool = True,
        num_workers: int = 0,
        split_seed: int = 0,
        symmetry: str | None = None,
        unlabeled_with_target: bool = False,
        pretrained_allowed: bool = False,
    ):
        super().__init__()
        check_source(path, generator, holdout_fraction, "the hackathon42 layout")
        self.path = Path(path).expanduser() if path is not None else None
        # Read by the model config (model.symmetry), not here: see hackrobust.models.invariance.
        self.symmetry = symmetry
        self.pretrained_allowed = pretrained_allowed
        self.unlabeled_with_target = unlabeled_with_target
        self.generator = generator
        self.source = source
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.batch_size = batch_size
        self.unlabeled_batch_size = unlabeled_batch_size or batch_size
        self.eval_batch_size = eval_batch_size
        self.holdout_fraction = holdout_fraction
        self.normalize = normalize
        self.num_workers = num_workers
        self.split_seed = split_seed
        self.with_unlabeled = False  # set by methods that train on the unlabeled set
        # Per-row weights of train_set: labeled batches are then drawn with replacement in
        # proportion to them (set by self-training's group balancing).
        self.train_weights: torch.Tensor | None = None
        self.data: HackathonData | None = None

    # ---- where the data comes from -------------------------------------------------------------

    def _generator_call(self) -> Callable[[], HackathonData]:
        if self.source is None:
            return self.generator
        return functools.partial(self.generator, source=self.source)

    def generated_dir(self) -> Path | None:
        """The cache folder of this generator configuration (None without a cache dir or seed)."""
        if self.generator is None or self.cache_dir is None:
            return None
        func, keywords = unwrap_partials(self._generator_call())
        if keywords.get("seed", 0) is None:
            return None  # an unseeded dataset is drawn anew each run: nothing to cache
        if keywords.get("draw") is False:  # the default: the folders made before it still serve
            keywords = {k: v for k, v in keywords.items() if k != "draw"}
        spec = {"func": f"{func.__module__}.{func.__qualname__}", "keywords": keywords}
        # A generator whose output changed for the same arguments bumps its `cache_version`.
        if getattr(func, "cache_version", 0):
            spec["version"] = func.cache_version
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
        name = func.__name__.removeprefix("make_")
        return self.cache_dir / f"{name}-{digest[:12]}"

    def prepare_data(self) -> None:
        target = self.generated_dir()
        if target is None or target.exists():
            return
        log.info("Generating dataset into %s", target)
        # FileExistsError: a parallel job wrote the same dataset first; both are identical.
        with contextlib.suppress(FileExistsError):
            save_hackathon_dir(self._generator_call()(), target)

    def _load(self) -> HackathonData:
        if self.path is not None:
            return load_hackathon_dir(self.path)
        cached = self.generated_dir()
        if cached is None:
            return self._generator_call()()
        if not cached.exists():
            self.prepare_data()
        return load_hackathon_dir(cached)

    # ---- tensors -------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = data = self._load()
        self.label_values = data.label_values
        x_labeled = torch.from_numpy(data.x_labeled)
        x_unlabeled = torch.from_numpy(data.x_unlabeled)
        x_target = torch.from_numpy(data.x_target)
        if self.normalize:
            x_labeled, x_unlabeled, x_target = _standardise(x_labeled, x_unlabeled, x_target)

        y_labeled = self.to_class_index(data.y_labeled)
        n_features = len(self.feature_names)
        labeled_groups = self.group_of(np.repeat(y_labeled[:, None], n_features, axis=1))
        holdout = torch.from_numpy(
            stratified_holdout(y_labeled, self.holdout_fraction, self.split_seed)
        )
        labeled = {
            "idx": torch.arange(len(y_labeled)),
            "x": x_labeled,
            "y": torch.from_numpy(y_labeled),
            "group": torch.from_numpy(labeled_groups),
        }
        self.train_set = TensorDict(**{k: v[~holdout] for k, v in labeled.items()})
        self.holdout_set = TensorDict(**{k: v[holdout] for k, v in labeled.items()})
        self.unlabeled_set = TensorDict(
            idx=torch.arange(len(x_unlabeled)),
            x=x_unlabeled,
            y=torch.full((len(x_unlabeled),), UNKNOWN),
            group=torch.from_numpy(self._groups(data.features_unlabeled, None, len(x_unlabeled))),
        )
        y_target = (
            self.to_class_index(data.y_target)
            if data.y_target is not None
            else np.full(len(x_target), UNKNOWN)
        )
        self.target_set = TensorDict(
            idx=torch.arange(len(x_target)),
            x=x_target,
            y=torch.from_numpy(y_target),
            group=torch.from_numpy(
                self._groups(data.features_target, data.y_target, len(x_target))
            ),
        )

    # ---- what the methods need to know ---------------------------------------------------------

    @property
    def folder(self) -> Path | None:
        """The dataset folder on disk (None for a generated dataset kept only in memory)."""
        return self.path if self.path is not None else self.generated_dir()

    @property
    def default_score(self) -> float:
        """The score of not submitting: the metadata's, else the hackathon's usual 0.8."""
        return self.default_score_for(None)

    def default_score_for(self, exercise_id: int | None) -> float:
        """The score of not submitting: the metadata's; else, for a hackathon folder (which has
        none), the hackathon's rule for the exercise it is submitted to
        (`exercises.default_score`)."""
        exercise = None if exercise_id is None else int(exercise_id)
        return default_score(exercise, self.data.metadata)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.data.input_shape

    @property
    def num_classes(self) -> int:
        return len(self.label_values)

    @property
    def feature_names(self) -> list[str]:
        return list(self.data.metadata.get("features", ["label"]))

    @property
    def group_names(self) -> list[str]:
        """One name per group id, e.g. "left=0,right=1", in label values."""
        k, names = self.num_classes, self.feature_names
        combos = np.stack(np.unravel_index(np.arange(k ** len(names)), (k,) * len(names)), 1)
        return [
            ",".join(f"{n}={self.label_values[c]}" for n, c in zip(names, row, strict=True))
            for row in combos
        ]

    @property
    def val_stage_names(self) -> list[str]:
        """Names of the validation dataloaders, in order: "val" (held-out labeled), "target".

        The target inputs are always there (checkpoint selection reads them); their labels are
        unknown (-1) without an answer key.
        """
        return (["val"] if len(self.holdout_set) else []) + ["target"]

    def to_class_index(self, labels: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.label_values, labels)
        if not np.array_equal(self.label_values[index.clip(max=self.num_classes - 1)], labels):
            raise ValueError(f"labels {np.setdiff1d(labels, self.label_values)} are not classes")
        return index.astype(np.int64)

    def group_of(self, features: np.ndarray) -> np.ndarray:
        """Group id of each row of class indices (N, F): the row read as a base-K number."""
        return np.ravel_multi_index(features.T, (self.num_classes,) * features.shape[1])

    def _groups(self, features: np.ndarray | None, labels: np.ndarray | None, n: int) -> np.ndarray:
        if features is not None and features.shape[1] == len(self.feature_names):
            return self.group_of(self.to_class_index(features.reshape(-1)).reshape(features.shape))
        if labels is not None and len(self.feature_names) == 1:
            return self.to_class_index(labels)
        return np.full(n, UNKNOWN, dtype=np.int64)

    # ---- loaders -------------------------------------------------------------------------------

    def _loader(
        self, dataset: TensorDict, batch_size: int, shuffle: bool, sampler=None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            collate_fn=pass_through,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, dataset: TensorDict) -> DataLoader:
        """Evaluation reads every row exactly once, also under DDP.

        Lightning's default distributed sampler pads the shards with repeated rows, which would
        count them twice in the per-group metrics; an unrepeated sampler gives uneven shards.
        """
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False) if distributed else None
        return self._loader(dataset, self.eval_batch_size, shuffle=False, sampler=sampler)

    def unlabeled_training_set(self) -> TensorDict:
        """The rows unlabeled batches come from: the unlabeled set, and with
        `unlabeled_with_target` the target inputs after it (labels hidden, ids continued)."""
        if not self.unlabeled_with_target:
            return self.unlabeled_set
        unlabeled, target = self.unlabeled_set.tensors, self.target_set.tensors
        return TensorDict(
            idx=torch.arange(len(self.unlabeled_set) + len(self.target_set)),
            x=torch.cat([unlabeled["x"], target["x"]]),
            y=torch.full((len(self.unlabeled_set) + len(self.target_set),), UNKNOWN),
            group=torch.cat([unlabeled["group"], target["group"]]),
        )

    def train_dataloader(self) -> dict[str, DataLoader]:
        if self.train_weights is None:
            labeled = self._loader(self.train_set, self.batch_size, shuffle=True)
        else:
            if len(self.train_weights) != len(self.train_set):
                raise ValueError(
                    f"train_weights has {len(self.train_weights)} rows, train_set "
                    f"{len(self.train_set)}: give one weight per training row"
                )
            sampler = WeightedRandomSampler(self.train_weights, len(self.train_set))
            labeled = self._loader(self.train_set, self.batch_size, shuffle=False, sampler=sampler)
        loaders = {"labeled": labeled}
        if self.with_unlabeled:
            loaders["unlabeled"] = self._loader(
                self.unlabeled_training_set(), self.unlabeled_batch_size, shuffle=True
            )
        return loaders

    def val_dataloader(self) -> list[DataLoader]:
        sets = {"val": self.holdout_set, "target": self.target_set}
        return [self._eval_loader(sets[name]) for name in self.val_stage_names]

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.target_set)


def check_source(path, generator, holdout_fraction: float, layout: str) -> None:
    """Exactly one of a folder (in `layout`) and a generator, and a held-out share in [0, 1)."""
    if (path is None) == (generator is None):
        raise ValueError(
            f"give exactly one of dataset.path (a folder in {layout}) and dataset.generator"
        )
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")


def unwrap_partials(call: Callable) -> tuple[Callable, dict]:
    """The function under nested partials, and the keywords they bind (outer ones win)."""
    keywords: dict = {}
    while isinstance(call, functools.partial):
        keywords = {**call.keywords, **keywords}
        call = call.func
    return call, keywords


def _standardise(reference_a, reference_b, *others):
    """Standardise per channel (images) or per feature (vectors) with the first two sets' stats."""
    reference = torch.cat([reference_a, reference_b])
    dims = [0, *range(2, reference.ndim)]
    mean = reference.mean(dim=dims, keepdim=True)
    std = reference.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return tuple((t - mean) / std for t in (reference_a, reference_b, *others))


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask holding out `fraction` of each class (at least one row of a class of 2+)."""
    holdout = np.zeros(len(labels), dtype=bool)
    if fraction == 0:
        return holdout
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        count = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        holdout[rows[:count]] = True
    return holdout
