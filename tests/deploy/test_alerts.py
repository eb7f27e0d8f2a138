"""deploy/prometheus/alerts.yml: well-formed rules, each on metrics the service exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import delightbridge

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PACKAGE = Path(delightbridge.__file__).parent
SUFFIXES = ("_bucket", "_count", "_sum")


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _exported() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(re.findall(r'"(delightbridge_[a-z0-9_]+)"', path.read_text("utf-8")))
    return names


def test_every_rule_is_complete() -> None:
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_every_metric_a_rule_reads_is_exported() -> None:
    exported = _exported()
    read = {name for rule in _rules()
            for name in re.findall(r"\bdelightbridge_[a-z0-9_]+", rule["expr"])}
    assert read
    unknown = {n for n in read
               if n not in exported and not any(n.endswith(s) and n[:-len(s)] in exported
                                                for s in SUFFIXES)}
    assert unknown == set()


def test_the_daily_alert_is_the_guard_the_settings_document() -> None:
    daily = next(r for r in _rules() if r["alert"] == "DelightBridgeDailyGuardReached")
    assert "delightbridge_gmail_daily_guard_units" in daily["expr"]
