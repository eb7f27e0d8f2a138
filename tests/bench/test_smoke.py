"""The benchmark harness still works: every scenario at tiny sizes, the JSON it writes.

Runs ``python -m bench all --size smoke`` exactly as a developer would (a real
simulator process, the test session's PostgreSQL through ``BENCH_DATABASE_URL``, the
session's Pub/Sub emulator when java is available), without touching BENCHMARKS.md.
It checks the shape of the results, never the speed: CI machines vary.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("quota", "ingest", "memory", "freshness", "consumer", "transport", "imports")
NEEDS_PUBSUB = {"freshness", "consumer"}


def _emulator(request: pytest.FixtureRequest) -> str | None:
    try:
        return str(request.getfixturevalue("pubsub_emulator"))
    except pytest.skip.Exception:  # no java or no jar here: those scenarios say so
        return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_every_scenario_runs_and_writes_its_results(
    pg_admin_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    emulator = _emulator(request)
    environ = {**os.environ, "BENCH_DATABASE_URL": pg_admin_url}
    environ.pop("BENCH_PUBSUB_EMULATOR_HOST", None)
    if emulator:
        environ["BENCH_PUBSUB_EMULATOR_HOST"] = emulator
    else:
        environ["PUBSUB_EMULATOR_JAR"] = str(tmp_path / "missing-*.jar")
    markdown = tmp_path / "BENCHMARKS.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--size", "smoke", "--results-dir",
         str(tmp_path / "results"), "--markdown", str(markdown)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-4000:]

    data = json.loads((tmp_path / "results" / "latest.json").read_text())
    environment = data["environment"]
    assert environment["machine"]["cores"] >= 1
    assert environment["versions"]["python"]
    assert environment["command"].startswith("python -m bench all")
    scenarios = data["scenarios"]
    assert set(scenarios) == set(SCENARIOS)
    for name, result in scenarios.items():
        expected = "not_runnable" if name in NEEDS_PUBSUB and not emulator else "ok"
        assert result["status"] == expected, (name, result.get("reason"))
        assert result["measured_at"]
        assert result["size"] == "smoke"
        if expected != "ok":
            assert result["reason"]
            continue
        for t in result["targets"]:
            assert set(t) >= {"name", "target", "measured", "unit", "met"}
            assert t["met"] in (True, False, None)
            assert t["measured"] is None or _number(t["measured"])

    quota = scenarios["quota"]["summary"]
    assert quota["engine_messages_per_s"] > 0
    # A moving one-second window admits at most ceil(T) windows' worth of units in T s:
    # a run of a second or two (this one) may exceed 100 % of units / (T x ceiling).
    elapsed = quota["engine_elapsed_s"]["median"]
    assert 0 < quota["quota_used_pct"] <= 100 * math.ceil(elapsed) / elapsed
    assert quota["speedup_vs_reference"] > 0
    ingest = scenarios["ingest"]
    assert ingest["summary"]["messages_per_s"] > 0
    assert ingest["summary"]["engine_cpu_ms_per_message"] > 0
    categories = {c["category"] for c in ingest["profiles"]["cprofile"]["categories"]}
    assert any(c.startswith("parse") for c in categories)
    assert scenarios["memory"]["points"][0]["peak_rss_mb"] > 0
    assert {r["transport"] for r in scenarios["transport"]["rows"]}
    imports = scenarios["imports"]
    for profile in ("2026", "legacy"):
        assert imports["by_profile"][profile]["gmail"]["units"] > 0
        assert imports["by_profile"][profile]["gmail"]["rate_limited"] == 0
    assert imports["inbox_first"]["seconds"] > 0
    assert imports["project"]["project_refusals"] == 0
    assert imports["project"]["failures"] == 0
    if emulator:
        fresh = imports["fresh_during_import"]
        assert fresh["missing"] == 0
        assert fresh["committed"] == fresh["changes"] > 0
        variant = scenarios["freshness"]["variants"][0]
        assert variant["missing"] == 0
        assert variant["p50_ms"] > 0
        run = scenarios["consumer"]["runs"][0]
        assert run["settled"] == run["notifications"] > 0
        assert run["services_behind_after"] == 0

    text = markdown.read_text()
    for name in (*SCENARIOS, "environment", "summary"):
        assert f"<!-- bench:{name}:start -->" in text
