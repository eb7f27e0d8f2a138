"""BENCHMARKS.md's generated blocks: results files are not kept in the tree, so a
command that measures one scenario must leave the others' rows as they were."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.stats import target

EARLIER = """# Benchmarks

<!-- bench:summary:start -->
| scenario | target | goal | measured | met | measured at |
| --- | --- | --- | ---: | :---: | --- |
| 1. Full sync under quota | quota ceiling used | >= 90 % | 90.4 % | **yes** | 2026-11-24 |
| 5. Memory | peak RSS | <= 300 MB | 138 MB | **yes** | 2026-12-06 |
| 5. Memory | flat | <= +10 % | 26.9 % | **no** | 2026-12-06 |
<!-- bench:summary:end -->

Hand-written analysis.
"""

ENVIRONMENT = {"machine": {"cores": 2, "cpu": "x", "ram_gib": 24, "kernel": "6"},
               "versions": {}, "postgres_source": "embedded", "command": "python -m bench memory",
               "started_at": "2026-12-07T00:00:00Z", "duration_s": 1.0}


def test_a_scenario_not_measured_keeps_its_summary_rows(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(EARLIER)
    memory = {"scenario": "memory", "title": report.TITLES["memory"], "status": "ok",
              "measured_at": "2026-12-07", "params": {},
              "targets": [target("flat", "<= +10 %", 8.0, "%", at_most=10)], "points": []}
    report.write_markdown(path, {"environment": ENVIRONMENT, "scenarios": {"memory": memory}})
    text = path.read_text()
    summary = report._block(text, "summary").splitlines()
    assert summary[2] == EARLIER.splitlines()[5]  # the quota row, as it was
    memory_rows = [line for line in summary if line.startswith("| 5. Memory")]
    assert len(memory_rows) == 1
    assert "2026-12-07" in memory_rows[0]
    assert "Hand-written analysis." in text
