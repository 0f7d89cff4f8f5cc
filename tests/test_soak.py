"""benchmarks/soak.py in miniature (20 sockets, 5 s, reconnecting every second or two), so the soak command
cannot rot: a real `hub serve`, every plugin, churn and traffic, and the verdict's numbers. The soak itself
(300 sockets, 5 minutes or longer) is documented in docs/operations.md, "Soak"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_passes_and_reports_its_numbers(tmp_path: Path) -> None:
    result = tmp_path / "soak.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--sockets", "20", "--duration", "5"]
    argv += ["--warmup", "1", "--sample-interval", "0.5", "--lifetime", "0.5", "2", "--ramp", "0.5"]
    argv += ["--action-interval", "0.3", "--json", str(result)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    document = json.loads(result.read_text())
    assert document["failures"] == []
    numbers, stats = document["numbers"], document["stats"]
    assert numbers["max_connections"] >= 15
    assert numbers["after_connections"] == 0
    assert numbers["after_fds"] <= numbers["baseline_fds"]
    assert numbers["after_tasks"] <= numbers["baseline_tasks"]
    assert abs(numbers["rss_drift"]) <= 0.10
    assert stats["connects"] > 20  # the clients came back after leaving
    assert set(stats["leaves"]) == {"close", "abort", "unsub+close"}
    assert stats["events"] > 0
    assert stats["errors"].get("internal", 0) == 0
    phases = {sample["phase"] for sample in document["samples"]}
    assert phases == {"baseline", "load", "leave"}
