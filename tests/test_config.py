"""Every config group composes; the Hydra app runs from the command line in its own directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hackrobust.utils.config import CONFIG_DIR

from helpers import compose_train, options

GROUP_OPTIONS = [
    (group, option)
    for group in (
        "trainer",
        "logger",
        "callbacks",
        "model",
        "debug",
        "experiment",
        "hparams_search",
        "self_training",
        "pretrain",
        "scheduler",
    )
    for option in options(group)
]


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_group_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.dataset._target_ and cfg.method._target_


def test_gpu_trainer_uses_bf16(tmp_path):
    cfg = compose_train(["trainer=gpu"], tmp_path)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"


def test_paths_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKROBUST_DATA_DIR", "/somewhere/data")
    cfg = compose_train([], tmp_path)
    assert cfg.paths.data_dir == "/somewhere/data"


def test_hackathon_dir_demands_a_path(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose_train(["dataset=hackathon_dir"], tmp_path)
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.dataset.path


def _cli(args, cwd, env):
    return subprocess.Popen(
        [sys.executable, "-m", "hackrobust.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_runs_print_the_config_and_never_share_a_directory(tmp_path):
    """Two runs started together, piped: each prints a header naming its options and its
    exact output folder, the config when asked, no Lightning chatter, the paths it wrote, and
    writes its own run directory."""
    env = os.environ | {"HACKROBUST_LOG_DIR": str(tmp_path / "logs")}
    args = [
        "experiment=quickstart",
        "debug=fast",
        "dataset.generator.n_labeled=60",
        "dataset.generator.n_unlabeled=60",
        "dataset.generator.n_target=30",
    ]
    procs = [_cli([*args, f"print_config={i == 0}"], tmp_path, env) for i in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for i, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, out
        # the resolved config is printed when asked only
        assert ("_target_: hackrobust.methods.ERM" in out) == (i == 0)
        assert "experiment=quickstart dataset=mnist_cc method=erm" in out.splitlines()[0]
        for chatter in ("GPU available", "TPU available", "Tip:", "LeafSpec"):
            assert chatter not in out
    run_dirs = sorted((tmp_path / "logs" / "runs").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        assert len((run_dir / "submission.csv").read_text().splitlines()) == 30
        assert (run_dir / ".hydra" / "config.yaml").exists()
        out = next(o for o in outputs if f"output: {run_dir}\n" in o)  # the exact folder
        assert f"to {run_dir / 'submission.csv'}\n" in out  # the exact CSV path
        assert "Seconds per stage: setup" in (run_dir / "train.log").read_text()


def test_cli_offline_mnist_error_names_the_directory_and_the_alternative(tmp_path):
    env = os.environ | {"HACKROBUST_LOG_DIR": str(tmp_path / "logs")}
    env["HACKROBUST_DATA_DIR"] = str(tmp_path / "empty")
    proc = _cli(
        ["dataset=mnist_cc", "debug=fast", "+dataset.generator.download=false"], tmp_path, env
    )
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0
    assert str(Path(tmp_path / "empty" / "MNIST" / "raw")) in out
    assert "dataset.source=digits" in out


# The study variants of experiments/hackathon_suite.py, one experiment config each.
SUITE = sorted(p.stem for p in (CONFIG_DIR / "experiment" / "suite").glob("*.yaml"))


def test_the_suite_has_its_variants():
    assert len(SUITE) >= 34 and {"oracle", "divdis_pretrained", "topk_low_mix"} <= set(SUITE)


@pytest.mark.parametrize("name", SUITE)
def test_every_suite_experiment_composes_and_resolves(name, tmp_path):
    text = (CONFIG_DIR / "experiment" / "suite" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n"), name  # its keys are the run's own
    cfg = compose_train([f"experiment=suite/{name}", "dataset=mnist_sum", "query=oracle"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.dataset._target_ and cfg.method._target_ and "experiment" not in cfg


COSINE = "torch.optim.lr_scheduler.CosineAnnealingLR"
# What a word in a variant's name promises: (the word, a dotted key, its value).
NAME_SAYS = [
    ("divdis", "method._target_", "hackrobust.methods.DivDis"),
    ("divdis3", "method.num_heads", 3),
    ("dbat", "method._target_", "hackrobust.methods.DBAT"),
    ("imagenet_lite0", "model._target_", "hackrobust.models.efficientnet_lite.efficientnet_lite0"),
    ("topk", "method._target_", "hackrobust.methods.TopKDisagreement"),
    ("per_assignment", "method.per_assignment", True),
    ("low_mix", "method.mix_rate_lower_bound", 0.05),
    ("oracle", "method._target_", "hackrobust.methods.ERM"),
    ("oracle", "dataset.generator.labeled_mix_rate", 0.5),
    ("4x", "dataset.generator.n_labeled", 4800),
    ("16x", "dataset.generator.n_labeled", 19200),
    ("long", "trainer.max_epochs", 20),
    ("pretrained", "pretrain._target_", "hackrobust.stages.Pretrain"),
    ("self_training", "self_training._target_", "hackrobust.stages.SelfTraining"),
    ("fixmatch", "self_training.fixmatch.threshold", 0.95),
    ("student30", "self_training.epochs", 30),
    ("flagship_fast", "trainer.precision", "bf16-mixed"),
    ("teacher", "self_training.start", "teacher"),
    ("teacher10", "self_training.epochs", 10),
    ("teacher20", "self_training.epochs", 20),
    ("blend", "self_training.blend", True),
    ("ensemble", "self_training.students", 3),
    ("2rounds", "self_training.rounds", 2),
    ("balanced", "self_training.balance_groups", True),
    ("crossfit", "self_training.folds", 2),
    ("keep90", "self_training.keep_fraction", 0.9),
    ("h256", "model.cnn_hidden", 256),
    ("consistency", "method.consistency", {}),
    ("cosine", "method.scheduler._target_", COSINE),
    ("transductive", "dataset.unlabeled_with_target", True),
    ("no_pair_switches", "method.pair_switches", False),
    ("last_fitting", "callbacks.model_checkpoint.monitor", "val/select_last_fitting"),
    ("chosen_head_fitting", "callbacks.head_fitting.tolerance", 0.05),
]


@pytest.mark.parametrize("name", SUITE)
def test_every_suite_experiment_selects_what_its_name_says(name, tmp_path):
    cfg = compose_train([f"experiment=suite/{name}", "dataset=mnist_sum_bis"], tmp_path)
    promised = [(key, value) for word, key, value in NAME_SAYS if word in name]
    assert promised, f"{name}: no word of its name is in NAME_SAYS"
    for key, value in promised:
        setting = OmegaConf.select(cfg, key)
        if OmegaConf.is_config(setting):
            setting = OmegaConf.to_container(setting)
        assert setting == value, (name, key)


# A few variants in full: what they set beyond the defaults (the whole of their old recipe).
SUITE_SETTINGS = {
    "oracle_16x_cosine": {
        "method._target_": "hackrobust.methods.ERM",
        "dataset.generator.labeled_mix_rate": 0.5,
        "dataset.generator.n_labeled": 19200,
        "method.scheduler._target_": COSINE,
        "callbacks": {},  # callbacks=none: the last epoch
        "pretrain": None,
        "self_training": None,
    },
    "divdis_long_self_training": {
        "method._target_": "hackrobust.methods.DivDis",
        "trainer.max_epochs": 20,
        "self_training.fixmatch": None,  # pseudo_label, no consistency term
        "method.scheduler": None,
        "pretrain": None,
    },
    "divdis_consistency_self_training_fixmatch": {
        "method.consistency": {},
        "pretrain.epochs": 20,  # on a pretrained trunk, as every FixMatch variant
        "self_training.epochs": None,
        "method.scheduler._target_": COSINE,
        "callbacks": {},
    },
    "divdis_pretrained_self_training_fixmatch_student30_chosen_head_fitting": {
        "method._target_": "hackrobust.methods.DivDis",
        "pretrain.epochs": 20,
        "self_training.fixmatch.threshold": 0.95,
        "self_training.epochs": 30,
        "method.scheduler._target_": COSINE,
        "callbacks.head_fitting.tolerance": 0.05,
        "model.cnn_blocks": 2,  # the flagship adds the third block (experiment=flagship)
    },
    "topk_low_mix_pretrained_self_training_fixmatch_student30": {
        "method._target_": "hackrobust.methods.TopKDisagreement",
        "method.mix_rate_lower_bound": 0.05,
        "method.per_assignment": True,
        "trainer.max_epochs": 20,
        "pretrain.epochs": 20,
        "self_training.fixmatch.threshold": 0.95,
        "self_training.epochs": 30,
        "method.scheduler._target_": COSINE,
        "callbacks": {},
    },
}


@pytest.mark.parametrize(("name", "settings"), sorted(SUITE_SETTINGS.items()))
def test_suite_experiments_set_their_recipe(name, settings, tmp_path):
    cfg = compose_train([f"experiment=suite/{name}", "dataset=mnist_sum"], tmp_path)
    OmegaConf.resolve(cfg)
    for key, value in settings.items():
        setting = OmegaConf.select(cfg, key)
        if OmegaConf.is_config(setting):
            setting = OmegaConf.to_container(setting)
        assert setting == value, (name, key)


HIERARCHICAL = {  # the benchmark's methods: the method each config selects, and its settings
    "erm": ("ERM", {}),
    "balanced_sampling": (
        "ERM",
        {"dataset.sampler.class_temperature": 1, "dataset.sampler.group_temperature": 1},
    ),
    "group_dro": ("GroupDRO", {"method.ema": 0.9}),
    "jtt": ("JTT", {"method.identification_folds": 5, "method.identification_epochs": 5}),
    "dfr": ("DFR", {}),
    "logit_adjustment": ("LogitAdjustment", {"method.target_prior": "group_balanced"}),
    "dfr_species_holdout": ("DFR", {"dataset.holdout_by": "group"}),
    "species_balanced": (
        "ERM",
        {"dataset.sampler.class_temperature": 0, "dataset.sampler.group_temperature": 1},
    ),
    "group_dro_balanced": (
        "GroupDRO",
        {
            "method.ema": 0.9,
            "dataset.sampler.class_temperature": 1,
            "dataset.sampler.group_temperature": 1,
        },
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(HIERARCHICAL))
def test_every_hierarchical_benchmark_method_is_an_experiment_config(name, tmp_path):
    assert {p.stem for p in (CONFIG_DIR / "experiment" / "hierarchical").glob("*.yaml")} == set(
        HIERARCHICAL
    )
    cfg = compose_train([f"experiment=hierarchical/{name}", "dataset=tinyimagenet_hier"], tmp_path)
    method, settings = HIERARCHICAL[name]
    assert cfg.method._target_ == f"hackrobust.methods.{method}"
    assert cfg.dataset.head_only is True
    assert "export_challenge_weights" in cfg.callbacks  # the rest is experiment=rayan's
    for key, value in settings.items():
        assert OmegaConf.select(cfg, key) == value


def test_the_demo_is_the_fast_flagship_offline_with_the_oracle(tmp_path):
    demo = compose_train(["experiment=demo"], tmp_path)
    fast = compose_train(["experiment=flagship_fast_teacher", "dataset=mnist_cc", "query=oracle",
                          "dataset.source=digits"], tmp_path)  # fmt: skip
    assert OmegaConf.to_container(demo) == OmegaConf.to_container(fast)
    assert (
        demo.dataset.source == "digits"
        and "oracle" in demo.query.callback.revealer._target_.lower()
    )


@pytest.mark.slow
def test_the_demo_ends_with_the_verdict_and_the_csv(tmp_path):
    env = os.environ | {"HACKROBUST_LOG_DIR": str(tmp_path / "logs")}
    proc = _cli(["experiment=demo", "trainer.enable_progress_bar=false"], tmp_path, env)
    out = proc.communicate(timeout=1800)[0]
    assert proc.returncode == 0, out[-3000:]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    verdict = next(line for line in out.splitlines() if "against the default 0.8" in line)
    assert verdict.endswith(f"CSV: {run_dir / 'submission.csv'}")
    revealed = int(re.search(r"with (\d+) revealed labels", verdict)[1])
    assert 1 <= revealed <= 5
    assert out.rstrip().splitlines()[-1].startswith("Seconds per stage")
