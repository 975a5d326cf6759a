"""Every config group composes; the Hydra app runs from the command line in its own directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from hackrobust.config import CONFIG_DIR

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


def _hackathon_suite_variants() -> dict[str, list[str]]:
    import importlib.util

    path = Path(__file__).parents[1] / "experiments" / "hackathon_suite.py"
    spec = importlib.util.spec_from_file_location("hackathon_suite", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VARIANTS


def package_of(group: str, option: str) -> str:
    """Where a group option's config lands: its `# @package` line, else the group's own key."""
    first = (CONFIG_DIR / group / f"{option}.yaml").read_text().partition("\n")[0]
    return first.removeprefix("# @package").strip() if first.startswith("# @package") else group


@pytest.mark.parametrize(("name", "overrides"), sorted(_hackathon_suite_variants().items()))
def test_every_hackathon_suite_variant_composes(name, overrides, tmp_path):
    cfg = compose_train([*overrides, "dataset=mnist_sum", "query=oracle"], tmp_path)
    OmegaConf.resolve(cfg)
    pairs = [o.lstrip("+").split("=", 1) for o in overrides]
    groups = {k: package_of(k, v) for k, v in pairs if (CONFIG_DIR / k).is_dir()}
    set_here = {k for k, _ in pairs} | set(groups.values())
    # The variant's settings outside its groups, which an option may interpolate
    # (the cosine schedule's T_max is trainer.max_epochs).
    roots = set(groups) | {p.split(".")[0] for p in groups.values()}
    settings = [o for o in overrides if re.split(r"[.=]", o.lstrip("+"))[0] not in roots]
    for key, value in pairs:
        if key in groups:  # a group: the option's config, as when selected alone
            package = groups[key]
            alone = compose_train([f"{key}={value}", *settings], tmp_path)
            OmegaConf.resolve(alone)
            alone = OmegaConf.select(alone, package) or {}
            for sub in alone:  # but for the keys the variant sets itself
                if f"{package}.{sub}" not in set_here:
                    assert OmegaConf.select(cfg, f"{package}.{sub}") == alone[sub], (name, key, sub)
        else:
            assert OmegaConf.select(cfg, key) == yaml.safe_load(value), (name, key)
