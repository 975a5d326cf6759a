"""Sweeps: an Optuna search and a plain multirun run end to end; the SLURM launcher composes."""

from __future__ import annotations

import subprocess
import sys

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hackrobust.submission import read_submission
from hackrobust.utils.config import CONFIG_DIR

from helpers import TINY

TOY = ["dataset=toy", *TINY, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def multirun(sweep_dir, *overrides):
    command = [
        sys.executable, "-m", "hackrobust.train", "--multirun", *TOY, *overrides,
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_optuna_search_returns_the_metric_and_keeps_each_trial(tmp_path):
    multirun(tmp_path, "hparams_search=erm_optuna", "hydra.sweeper.n_trials=2")
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert 0 <= results["best_value"] <= 1
    assert set(results["best_params"]) == {
        "method.optimizer.lr",
        "method.optimizer.weight_decay",
    }
    for trial in ("0", "1"):  # each trial in its own folder: nothing overwritten
        assert len(read_submission(tmp_path / trial / "submission.csv")) == 64


def test_multirun_over_methods_and_seeds_writes_one_folder_per_job(tmp_path):
    multirun(tmp_path, "method=erm,divdis", "seed=0,1")
    overrides = [
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").read_text() for job in range(4)
    ]
    assert len(set(overrides)) == 4
    assert all((tmp_path / str(job) / "submission.csv").exists() for job in range(4))


def test_slurm_launcher_composes_with_one_override(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}"],
            return_hydra_config=True,
        )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["submitit_folder"].startswith(str(tmp_path))
    assert launcher["setup"] == [f"export OMP_NUM_THREADS={launcher['cpus_per_task']}"]
