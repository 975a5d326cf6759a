"""Compose the project's Hydra config the way `python -m hackrobust.train` does."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from hackrobust.utils.config import CONFIG_DIR

# Tiny sizes for generated datasets: enough rows for every class and group, seconds to train.
TINY = [
    "dataset.generator.n_labeled=96",
    "dataset.generator.n_unlabeled=128",
    "dataset.generator.n_target=64",
]


def options(group: str) -> list[str]:
    """The selectable options of a config group (files starting with _ are shared bases)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed `train` config with Hydra's runtime set, writing into `output_dir`."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"paths.output_dir={output_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def build_run(overrides: list[str], output_dir: Path) -> tuple[DictConfig, object, object]:
    """The composed config, its set-up datamodule and its method, built as `train` builds them."""
    import hydra

    cfg = compose_train(overrides, output_dir)
    datamodule = hydra.utils.instantiate(cfg.dataset)
    datamodule.setup("fit")
    method = hydra.utils.instantiate(
        cfg.method,
        model=hydra.utils.instantiate(cfg.model),
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        group_names=datamodule.group_names if datamodule.data.has_answer_key else None,
    )
    return cfg, datamodule, method


# The offline stand-in of each real image source.
OFFLINE_SOURCE = {"mnist": "digits", "cifar": "synthetic", "smiles": "synthetic"}


@cache
def _image_source(dataset: str) -> str | None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[f"dataset={dataset}"]).dataset.get("source")


def offline_overrides(dataset: str, output_dir: Path) -> list[str]:
    """Overrides that make a generated `dataset` tiny and offline."""
    source = _image_source(dataset)
    extra = [f"dataset.source={OFFLINE_SOURCE[source]}"] if source in OFFLINE_SOURCE else []
    return [f"dataset={dataset}", *TINY, *extra]


def student_recipe(cfg: DictConfig):
    """The self-training students' recipe of `cfg`, built as the self-training stage builds it
    from the run: the model, optimizer and schedule partials, and the run's trainer settings."""
    import hydra

    from hackrobust.training.self_training import StudentRecipe

    return StudentRecipe(
        model=hydra.utils.instantiate(cfg.model),
        optimizer=hydra.utils.instantiate(cfg.method.optimizer),
        scheduler=hydra.utils.instantiate(cfg.method.get("scheduler")),
        trainer=trainer_factory(cfg),
    )


def trainer_factory(cfg: DictConfig):
    """The run's trainer settings as `train` passes them to side fits: a partial of a Trainer."""
    import hydra

    return hydra.utils.instantiate(cfg.trainer, _partial_=True)
