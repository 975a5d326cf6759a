"""Studies that run in seconds on the bundled stand-ins: they write the table they promise."""

import argparse
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
import torch

from hackrobust.query.report import CAPPED, RULE_VERSION

from helpers import TINY

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
# One epoch on tiny splits: these tests check what a study writes, not how well it trains.
QUICK = ["--extra", "trainer.enable_progress_bar=false", "trainer.max_epochs=1", *TINY]


def test_speed_study_reports_the_ratio_and_the_allocator_row(tmp_path):
    out = tmp_path / "speed.md"
    command = [sys.executable, str(EXPERIMENTS / "speed_study.py"), "--offline", "--epochs", "2"]
    # Tiny splits: the table, not the timings, is under test.
    command += ["--extra", *TINY]
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True, timeout=600)
    table = out.read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["plain", "lightning", "lightning, malloc defaults"]
    ratio = float(table.split("**Lightning / plain epoch time: ")[1].split("**")[0])
    assert ratio > 0
    assert "host_memory_cache=null" in table
    assert f"torch {torch.__version__}" in table  # what the timings depend on


def test_erm_baseline_tables_erm_beside_the_default_and_records_the_machine(tmp_path):
    out = tmp_path / "erm.md"
    command = [sys.executable, str(EXPERIMENTS / "erm_baseline.py"), "--offline", "--seeds", "0"]
    command += ["--datasets", "toy", "--out", str(out), *QUICK]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    table = out.read_text()
    row = next(line for line in table.splitlines() if line.startswith("| toy |"))
    accuracy, _, default = (cell.strip() for cell in row.split("|")[2:5])
    assert 0.0 <= float(accuracy.split(" ± ")[0]) <= 1.0 and float(default) == 0.8
    assert f"torch {torch.__version__}" in table


def test_hackathon_suite_writes_its_table_plot_and_what_is_missing(tmp_path):
    out = tmp_path / "suite"
    command = [sys.executable, str(EXPERIMENTS / "hackathon_suite.py"), "--methods", "erm"]
    command += ["--seeds", "0", "--offline", "--out", str(out)]
    subprocess.run(
        [*command, "--datasets", "toy", *QUICK], check=True, capture_output=True, timeout=600
    )
    table = out.with_suffix(".md").read_text()
    assert "| toy | erm |" in table
    recorded = json.loads(out.with_suffix(".jsonl").read_text().splitlines()[0])["environment"]
    assert recorded["torch"] == torch.__version__ and recorded["cpu"]
    assert f"Recorded on: {recorded['cpu']}, torch {torch.__version__}" in table
    assert "![score earned per dataset and method](suite.png)" in table
    assert out.with_suffix(".png").stat().st_size > 0
    assert "Not run yet" not in table
    # Each stage's seconds, from the run's own timings: the same numbers as its metrics.
    timings = table.split("Seconds per stage")[1]
    row = next(line for line in timings.splitlines() if line.startswith("| toy | erm |"))
    metrics = json.loads(out.with_suffix(".jsonl").read_text().splitlines()[0])["metrics"]
    assert row.split("|")[-3].strip() == f"{metrics['timings/total']:.0f}"  # the total column

    grouped = [*command, "--datasets", "toy", "mnist", "--table-only"]
    subprocess.run(grouped, check=True, capture_output=True, timeout=600)
    missing = out.with_suffix(".md").read_text().split("Not run yet")[1]
    assert "mnist_cc erm seed 0" in missing and "mnist_embed_456 erm seed 0" in missing
    assert "vehicle_animal" not in missing


def _suite_module():
    spec = importlib.util.spec_from_file_location("suite", EXPERIMENTS / "hackathon_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hackathon_suite_runs_jobs_side_by_side_and_tables_without_the_job_count(tmp_path):
    out = tmp_path / "suite"
    command = [sys.executable, str(EXPERIMENTS / "hackathon_suite.py"), "--methods", "erm"]
    command += ["--datasets", "toy", "--seeds", "0", "1", "--offline", "--out", str(out)]
    subprocess.run([*command, "--jobs", "2", *QUICK], check=True, capture_output=True, timeout=600)
    records = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in records) == [0, 1]
    regenerate = out.with_suffix(".md").read_text().split("Regenerate: `")[1].split("`")[0]
    assert "--seeds 0 1" in regenerate and "--jobs" not in regenerate


def test_a_failed_run_stops_new_ones_but_keeps_those_under_way(monkeypatch, tmp_path):
    suite = _suite_module()
    started = []

    def fake_run(method, dataset, seed, args, log_dir):
        started.append(seed)
        if seed == 0:
            time.sleep(0.1)  # seed 1 has started beside it
            raise RuntimeError("seed 0 failed")
        time.sleep(0.5)  # still under way when seed 0 fails
        return {"seed": seed}

    monkeypatch.setattr(suite, "run", fake_run)
    args = argparse.Namespace(jobs=2)
    finished = []
    with pytest.raises(RuntimeError, match="seed 0 failed"):
        for record in suite.run_all([("erm", "toy", s) for s in range(6)], args, tmp_path):
            finished.append(record["seed"])
    assert finished == [1]  # the run beside the failure is kept; seeds 2 to 5 never start
    assert sorted(started) == [0, 1]


def test_a_run_another_process_recorded_meanwhile_is_skipped(monkeypatch, tmp_path):
    suite = _suite_module()
    started, recorded = [], set()

    def fake_run(method, dataset, seed, args, log_dir):
        started.append(seed)
        recorded.add(("erm", "toy", seed + 1))  # meanwhile, another process makes the next one
        return {"seed": seed}

    monkeypatch.setattr(suite, "run", fake_run)
    todo = [("erm", "toy", s) for s in range(4)]
    args = argparse.Namespace(jobs=1)
    finished = [r["seed"] for r in suite.run_all(todo, args, tmp_path, lambda: recorded)]
    assert started == finished == [0, 2]


def test_table_arguments_leave_out_what_the_table_does_not_depend_on():
    suite = _suite_module()
    argv = ["--methods", "erm", "--jobs", "4", "--table-only", "--seeds", "0", "--jobs=2"]
    assert suite.table_arguments(argv) == ["--methods", "erm", "--seeds", "0"]


def test_ceilings_count_as_blind_submissions_and_never_query():
    suite = _suite_module()
    abstained = {"recommendation": "keep the default (do not submit)", "labels_revealed": 5}
    record = {"method": "oracle_4x", "metrics": {"target/final_acc": 0.97}, "report": abstained}
    assert suite.decision_score(record, 0.8) == (True, 0.97)
    assert suite.decision_score(record | {"method": "divdis"}, 0.8) == (False, 0.8)
    assert suite.decision_score(record | {"method": "erm"}, 0.8) == (True, 0.97)  # blind
    assert suite.default_score("humans") == 0.5 and suite.default_score("mnist_cc") == 0.8
    for ceiling in suite.CEILINGS:
        overrides = suite.overrides_for(ceiling, "mnist_sum_bis", 0, [], offline=False)
        # ERM (conf/experiment/suite/oracle*.yaml), asking for no label
        assert overrides[0] == f"experiment=suite/{ceiling}" and "query=oracle" not in overrides
    assert "query=oracle" in suite.overrides_for("divdis", "mnist_cc", 0, [], offline=False)


SUITE_DIR = EXPERIMENTS.parent / "conf" / "experiment" / "suite"
SUITE = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


@cache
def _recorded_runs() -> dict[str, list[str]]:
    """For each suite variant, the `hackrobust.train` overrides of its latest recorded run made
    before it became a config (its recipe then an override list), from the committed records."""
    latest = {}
    for store in sorted((EXPERIMENTS / "results").glob("*.jsonl")):
        for line in store.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            method, overrides = record.get("method"), record.get("overrides", "").split()
            if method in SUITE and overrides and overrides[0] != f"experiment=suite/{method}":
                latest[method] = overrides
    return latest


def test_the_suite_selects_its_variants_experiments_and_methods():
    suite = _suite_module()
    assert suite.selected_by("divdis_pretrained") == ["experiment=suite/divdis_pretrained"]
    assert suite.selected_by("experiment/flagship") == ["experiment=flagship"]
    assert suite.selected_by("dbat") == ["method=dbat"]
    for name in SUITE:
        assert suite.selected_by(name) == [f"experiment=suite/{name}"]


def _studies_module():
    spec = importlib.util.spec_from_file_location("studies", EXPERIMENTS / "studies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _methods_run_by(arguments: list[str]) -> list[str]:
    """The --methods names of a hackathon_suite.py command line."""
    names = arguments[arguments.index("--methods") + 1 :]
    return names[: next((i for i, a in enumerate(names) if a.startswith("--")), len(names))]


def test_every_name_in_the_records_and_the_studies_still_selects_a_config():
    """The committed records are keyed by --methods names: each still names a suite variant, an
    experiment or a method, as does each name a study runs."""
    suite = _suite_module()
    names = {
        json.loads(line)["method"]
        for store in (EXPERIMENTS / "results").glob("hackathon_suite*.jsonl")
        for line in store.read_text().splitlines()
        if line.strip()
    }
    for _, (script, *arguments) in _studies_module().STUDIES.values():
        if script == "hackathon_suite.py":
            names |= set(_methods_run_by(arguments))
    conf = EXPERIMENTS.parent / "conf"
    for name in sorted(names):
        group, _, option = suite.selected_by(name)[0].partition("=")
        assert (conf / group / f"{option}.yaml").is_file(), name
    assert set(SUITE) <= names | set(_recorded_runs())  # no variant that nothing ran


@pytest.mark.parametrize("name", SUITE)
def test_every_suite_variant_composes_as_its_recorded_runs_did(name, tmp_path):
    """experiment=suite/NAME is the recipe the committed records of NAME were run with: the
    same composed config as the override list they record."""
    from omegaconf import OmegaConf

    from helpers import compose_train

    recorded = _recorded_runs()
    if name not in recorded:
        pytest.skip(f"no run of {name} recorded before it became a config")
    overrides = recorded[name]
    start = next(i for i, o in enumerate(overrides) if o.startswith("dataset="))
    rest = [o for o in overrides[start:] if not o.startswith("study=")]

    def composed(selection: list[str]) -> dict:
        cfg = compose_train([*selection, *rest], tmp_path)
        OmegaConf.resolve(cfg)
        return OmegaConf.to_container(cfg)

    assert composed([f"experiment=suite/{name}"]) == composed(overrides[:start]), overrides


@pytest.mark.parametrize("dataset", ["mnist_sum", "mnist_embed"])
def test_experiment_flagship_is_the_recipe_the_study_measured(tmp_path, dataset):
    """`experiment=flagship` composes to the config of mnist_bar's flagship rows: the suite's
    variant with the study's `model.cnn_blocks=3`, nothing more and nothing less."""
    from omegaconf import OmegaConf

    from helpers import compose_train

    spec = importlib.util.spec_from_file_location("bar", EXPERIMENTS / "mnist_bar.py")
    bar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bar)
    study, variant = bar.FLAGSHIP
    studies = _studies_module()
    common = [f"dataset={dataset}", "dataset.source=digits", "query=oracle"]
    studied = compose_train(
        [f"experiment=suite/{variant}", "model.cnn_blocks=3", *common], tmp_path
    )
    flagship = compose_train(["experiment=flagship", *common], tmp_path)

    assert OmegaConf.to_container(flagship) == OmegaConf.to_container(studied)
    assert "attribution_maps" in flagship.callbacks  # what each head looks at, as by default
    reruns = [
        argv for _, argv in studies.STUDIES.values() if f"experiments/results/{study}" in argv
    ]
    assert reruns and variant in reruns[0]  # a study that can be re-run


def test_mnist_bar_reads_each_recipe_and_erm_on_the_same_model(tmp_path):
    spec = importlib.util.spec_from_file_location("bar", EXPERIMENTS / "mnist_bar.py")
    bar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bar)

    def record(dataset, method, seed, acc):
        return {"dataset": dataset, "method": method, "seed": seed,
                "metrics": {"target/final_acc": acc}}  # fmt: skip

    deep = [record("a", "recipe", s, acc) for s, acc in ((1, 0.99), (0, 0.97), (2, 0.99))]
    deep += [record("a", "erm", s, 0.9) for s in range(3)]
    main = [record(d, "erm", s, 0.5) for d in ("a", "b") for s in range(3)]
    main += [record("b", "recipe", s, 0.95) for s in range(3)]
    for name, records in (("deep", deep), ("hackathon_suite", main)):
        lines = "\n".join(json.dumps(r) for r in records)
        (tmp_path / f"{name}.jsonl").write_text(lines + "\n")

    rows = bar.bar_rows(tmp_path, {"a": ("deep", "recipe"), "b": ("hackathon_suite", "recipe")})

    assert rows[0]["recipe"] == [0.97, 0.99, 0.99] and rows[0]["meets"]  # mean 0.983, seed order
    assert rows[0]["erm"] == [0.9] * 3 and rows[0]["erm_study"] == "deep"  # the same model's
    assert rows[1]["erm"] == [0.5] * 3 and not rows[1]["meets"]
    text = bar.table(rows)
    assert (
        "| a | `recipe` | [deep](deep.md) | 0.983 | 0.970 | 0.970, 0.990, 0.990 | 0.900 | yes |"
        in text
    )
    assert "**1 of 2 sets meet 0.98" in text
    with pytest.raises(ValueError, match="deep.jsonl has no recipe run on c"):
        bar.bar_rows(tmp_path, {"c": ("deep", "recipe")})
    # The one recipe: a set meets the bar only with all its seeds run; ERM from FLAGSHIP's study.
    flagship = [
        record(d, "recipe", s, acc) | {"report": {"recommendation": verdict}}
        for d, s, acc, verdict in (
            ("a", 0, 0.97, "keep the default (do not submit)"),
            ("a", 1, 0.99, "submit"),
            ("a", 2, 0.99, "submit"),
            ("c", 0, 0.99, "submit"),
        )
    ] + [record("a", "erm", s, 0.7) for s in range(2)]
    lines = "\n".join(json.dumps(r) for r in flagship)
    (tmp_path / f"{bar.FLAGSHIP[0]}.jsonl").write_text(lines + "\n")
    rows = bar.flagship_rows(tmp_path, ("a", "b", "c"), (bar.FLAGSHIP[0], "recipe"))
    assert [r["recipe"] for r in rows] == [[0.97, 0.99, 0.99], [], [0.99]]
    text = bar.flagship_table(rows, (bar.FLAGSHIP[0], "recipe"))
    assert "## The flagship, one recipe on every set: `recipe`" in text
    assert "| a | 3 of 3 | 0.983 | 0.970 | 0.970, 0.990, 0.990 | 2 of 3 | 0.700 | yes |" in text
    assert "| b | 0 of 3 | not run yet | – | – | 0 of 0 | not run | open |" in text
    assert "| c | 1 of 3 | 0.990 | 0.990 | 0.990 | 1 of 1 | not run | open |" in text
    assert "**The one recipe meets 0.98 on 1 of 3 sets; 1 of 3 have all 3 seeds run.**" in text
    previous = bar.flagship_table(rows[2:], heading="The previous one recipe")
    assert previous.startswith(f"## The previous one recipe: `{bar.FLAGSHIP[1]}`")
    # Fresh seeds: whichever were run, per dataset.
    assert bar.fresh_seeds_table(tmp_path) == ""  # no such study yet
    fresh = [
        record("mnist_embed", bar.FLAGSHIP[1], s, acc) | {"report": {"recommendation": "submit"}}
        for s, acc in ((4, 0.98), (3, 0.99))
    ]
    (tmp_path / f"{bar.FRESH_SEEDS}.jsonl").write_text("\n".join(map(json.dumps, fresh)) + "\n")
    table = bar.fresh_seeds_table(tmp_path)
    assert "| mnist_embed | 3, 4 | 0.985 | 0.980 | 0.990, 0.980 | 2 of 2 |" in table


def test_the_degeneracy_count_finds_left_right_alone_with_two_classes_and_720_with_three():
    spec = importlib.util.spec_from_file_location(
        "degeneracy", EXPERIMENTS / "pair_switch_degeneracy.py"
    )
    degeneracy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(degeneracy)
    two, three = degeneracy.count(2, 0.5), degeneracy.count(3, 0.5)
    assert two["left_right_is_least"] and two["least_pairs"] == 2  # (left, right), (right, left)
    assert three["left_right_is_least"] and three["rules"] == 3**6
    # 6! one-to-one maps of the six decorrelated cells onto the six pairs of different classes.
    assert three["least_pairs"] == 720 and three["plausible_least_pairs"] == 2**3


def test_studies_are_run_by_name_with_their_one_command_line(monkeypatch, capsys):
    studies = _studies_module()
    for _, (script, *_) in studies.STUDIES.values():
        assert (EXPERIMENTS / script).is_file(), script
    ran = []

    def fake_run(command, cwd):
        ran.append((command, cwd))
        return argparse.Namespace(returncode=0)

    monkeypatch.setattr(studies.subprocess, "run", fake_run)
    assert studies.main(["hackathon-ceiling", "--jobs", "2"]) == 0
    command, cwd = ran[0]
    assert command[1:4] == ["experiments/hackathon_suite.py", "--methods", "oracle"]
    assert command[-2:] == ["--jobs", "2"] and cwd == EXPERIMENTS.parent
    assert studies.main(["no-such-study"]) == 2 and len(ran) == 1
    assert studies.main([]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in studies.STUDIES)


def _table_of(script: str, arguments: list[str]) -> Path:
    """The Markdown table a study writes: its --out, else its script's default."""
    if "--out" in arguments:
        return EXPERIMENTS.parent / f"{arguments[arguments.index('--out') + 1]}.md"
    return EXPERIMENTS / "results" / f"{Path(script).stem}.md"


def test_every_studys_table_says_the_command_that_regenerates_it():
    """A table's "Regenerate:" line is its study's command in experiments/studies.py, so that
    `make study NAME=...` remakes that very table (and resumes from its records)."""
    checked = 0
    for name, (_, (script, *arguments)) in _studies_module().STUDIES.items():
        table = _table_of(script, arguments)
        said = (
            re.search(r"Regenerate: `(.*?)` \(data", table.read_text()) if table.exists() else None
        )
        if said:
            assert said[1] == f"python experiments/{script} {shlex.join(arguments)}".strip(), name
            checked += 1
    assert checked >= 15


def test_the_makefile_runs_studies_through_one_target():
    makefile = (EXPERIMENTS.parent / "Makefile").read_text()
    helped = [line for line in makefile.splitlines() if re.match(r"^[a-zA-Z_-]+:.*?## ", line)]
    assert len(helped) <= 12 and any(line.startswith("study:") for line in helped)
    # One way in: `make study NAME=...`, also spelt `make study-NAME` by one pattern rule.
    assert re.findall(r"^study-[^:]*:", makefile, re.M) == ["study-%:"]
    assert "experiments/studies.py" in makefile


def test_report_calibration_counts_bad_submits_and_interval_coverage(tmp_path):
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True, cwd=EXPERIMENTS).stdout.strip()  # fmt: skip

    def record(accuracy, interval, verdict, basis="head agreement on the target set, ...",
               commit="0000000", **rule_version):  # fmt: skip
        report = {"estimate_interval_90": interval, "estimate_basis": basis,
                  "recommendation": verdict, "default_score": 0.8, **rule_version}  # fmt: skip
        metrics = {"target/final_acc": accuracy}
        return json.dumps({"report": report, "metrics": metrics, "commit": commit})

    results = tmp_path / "results"
    results.mkdir()
    (results / "study_a.jsonl").write_text(
        "\n".join([
            record(0.75, [0.85, 0.99], "submit"),  # a bad submit, below its interval
            record(0.97, [0.95, 0.99], "submit", commit=head),  # covered, today's rule
            record(1.0, [0.95, 0.99], "submit", commit=head),  # above, today's rule
            # Reports that say their rule: today's counts wherever it was written; rule 1's
            # does not, even when written after --since.
            record(0.9, [0.85, 0.95], "submit", rule_version=RULE_VERSION),
            record(0.9, [0.85, 0.95], "submit", commit=head, rule_version=1),
            # Rule 2 capped by the class shares: today's rule would write another interval.
            record(0.7, [0.74, 0.76], "keep the default (do not submit)",
                   "head agreement on the target set, ...; " + CAPPED, commit=head),
            record(0.6, [0.4, 0.9], "keep the default (do not submit)", "revealed labels only"),
        ]) + "\n"
    )  # fmt: skip
    # A record another study copied as it was counts once.
    copied = record(0.75, [0.85, 0.99], "submit")
    (results / "study_b.jsonl").write_text(
        json.dumps({"metrics": {"target/acc": 0.9}}) + "\n" + copied + "\n"
    )
    out = tmp_path / "calibration"
    command = [sys.executable, str(EXPERIMENTS / "report_calibration.py"),
               "--results", str(results), "--out", str(out), "--since", head]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=EXPERIMENTS)
    lines = out.with_suffix(".md").read_text().splitlines()
    today = lines.index(f"## Today's rule (version {RULE_VERSION}): 3 runs")
    assert lines[today + 4] == "| heads told apart | 3 | 3 | 0 | 2 (66.7%) | 33.3% | 0.0% |"
    assert "| heads told apart | 6 | 5 | 1 | 3 (50.0%) | 16.7% | 33.3% |" in lines
    assert "| revealed labels only | 1 | 0 | 0 | 1 (100.0%) | 0.0% | 0.0% |" in lines
    assert lines.count("| all | 7 | 5 | 1 | 4 (57.1%) | 14.3% | 28.6% |") == 2  # by basis, by study
    assert not any(line.startswith("| study_b ") for line in lines)  # no report: not counted


def test_student_settling_tables_where_each_rule_stops_and_what_it_costs(tmp_path):
    def record(dataset, changed, accuracy, seconds):
        metrics = {f"self_training/student_acc_epoch/{k}": a for k, a in enumerate(accuracy)}
        metrics["timings/self_training"] = seconds
        report = {"self_training": {"changed_by_epoch": changed}}
        return json.dumps({"dataset": dataset, "seed": 0, "metrics": metrics, "report": report})

    records = tmp_path / "records.jsonl"
    skipped = json.dumps({"dataset": "c", "seed": 0, "metrics": {}, "report": {}})
    records.write_text("\n".join([
        record("a", [0.1, 0.0, 0.0, 0.0], [0.9, 0.95, 0.96, 0.96, 0.97], 40.0),
        record("b", [0.003, 0.003, 0.02, 0.0], [0.99, 0.99, 0.98, 0.99, 0.99], 8.0),
        skipped,  # no student trained: not a trajectory
    ]) + "\n")  # fmt: skip
    out = tmp_path / "settling"
    command = [sys.executable, str(EXPERIMENTS / "student_settling.py"), str(records),
               "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    lines = out.with_suffix(".md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| settled_below"))
    assert "| a seed 0 (end 0.9700) | b seed 0 (end 0.9900) |" in header
    assert "c seed 0" not in header
    # Stop after 2 settled epochs in a row: a after epoch 3 (one epoch of 10 s saved, 0.01
    # lost); b never settles under 0 change, so it trains all 4.
    assert "| 0.0 | 2 | 3: 0.9600 | 4: 0.9900 | 10 | 0.0100 |" in lines
    # Under 0.005: b stops after epoch 2 (2 epochs of 2 s saved), a after epoch 3.
    assert "| 0.005 | 2 | 3: 0.9600 | 2: 0.9800 | 14 | 0.0100 |" in lines
    assert "| a seed 0 | 1 | 0.1000 | 0.9500 |" in lines  # the trajectory, epoch by epoch


def test_report_recheck_runs_each_bad_submit_again_once_and_tables_both_verdicts(tmp_path):
    overrides = ["method=divdis", "dataset=toy", *TINY, "seed=3", "query=oracle",
                 "trainer.max_epochs=1", "logger=none"]  # fmt: skip
    old_report = {"recommendation": "submit", "default_score": 0.8,
                  "estimate_interval_90": [0.9, 0.99]}  # fmt: skip

    def record(accuracy, recommendation="submit"):
        return json.dumps({
            "dataset": "toy", "seed": 3, "method": "divdis", "commit": "0000000",
            "overrides": shlex.join(overrides), "metrics": {"target/final_acc": accuracy},
            "report": old_report | {"recommendation": recommendation},
        })  # fmt: skip

    results = tmp_path / "results"
    results.mkdir()
    # One bad submit; a good one and a kept default are not run again.
    (results / "old_study.jsonl").write_text(
        "\n".join([record(0.5), record(0.95), record(0.5, "keep the default")]) + "\n"
    )
    command = [sys.executable, str(EXPERIMENTS / "report_recheck.py"), "--results", str(results)]
    for _ in range(2):  # the second time finds it done: resumable, nothing runs twice
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    records = [json.loads(line) for line in (results / "report_recheck.jsonl").open()]
    assert len(records) == 1
    assert records[0]["then"] == {"study": "old_study", "commit": "0000000", "accuracy": 0.5,
                                  "interval": [0.9, 0.99], "recommendation": "submit"}  # fmt: skip
    assert records[0]["report"]["rule_version"] == RULE_VERSION
    rows = [line for line in (results / "report_recheck.md").read_text().splitlines()
            if line.startswith("| `method=divdis")]  # fmt: skip
    assert len(rows) == 1 and "| 0000000 | 0.500 | [0.9, 0.99] | submit |" in rows[0]
    # A recheck made under an earlier report rule is run again, its record replaced.
    store = results / "report_recheck.jsonl"
    stale = json.loads(store.read_text())
    stale["report"]["rule_version"] = RULE_VERSION - 1
    store.write_text(json.dumps(stale) + "\n")
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    records = [json.loads(line) for line in store.open()]
    assert len(records) == 1 and records[0]["report"]["rule_version"] == RULE_VERSION
