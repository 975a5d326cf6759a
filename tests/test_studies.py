"""Studies that run in seconds on the bundled stand-ins: they write the table they promise."""

import subprocess
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def test_speed_study_reports_the_ratio_and_the_allocator_row(tmp_path):
    out = tmp_path / "speed.md"
    command = [sys.executable, str(EXPERIMENTS / "speed_study.py"), "--offline", "--epochs", "2"]
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True, timeout=600)
    table = out.read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["plain", "lightning", "lightning, malloc defaults"]
    ratio = float(table.split("**Lightning / plain epoch time: ")[1].split("**")[0])
    assert ratio > 0
    assert "host_memory_cache=null" in table
