"""Results: the JSON file and the generated blocks of BENCHMARKS.md.

``results/latest.json`` (on the measuring machine, out of git) holds the latest result
of every scenario, each with the date, command and size it was measured with; running
one scenario replaces only its own entry (memory points are kept per mailbox size).
BENCHMARKS.md has one generated block per scenario between ``<!-- bench:NAME:start -->``
and ``<!-- bench:NAME:end -->`` markers, plus an environment block and a summary of
every target (a scenario not measured keeps its rows); everything outside the markers
is hand-written analysis and is left alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASH = "\u2013"  # an en dash, for empty cells
ORDER = ("quota", "ingest", "memory", "freshness", "consumer", "transport", "imports")
TITLES = {  # each scenario's heading, in BENCHMARKS.md and in its summary rows
    "quota": "1. Full sync under quota",
    "ingest": "2. Ingest ceiling",
    "freshness": "3. Freshness",
    "consumer": "4. Consumer throughput",
    "memory": "5. Memory",
    "transport": "Gmail transport comparison",
    "imports": "6. Imports under the 2026 and legacy quota models",
}


# --------------------------------------------------------------------------- JSON


def merge(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    merged = dict(previous or {})
    merged["environment"] = current["environment"]
    scenarios = dict(merged.get("scenarios") or {})
    for name, result in current["scenarios"].items():
        if name == "memory" and "memory" in scenarios and result.get("points") is not None:
            from bench import memory

            kept = [p for p in scenarios["memory"].get("points", [])
                    if p["messages"] not in {q["messages"] for q in result["points"]}]
            result = memory.summarize({**result, "points": [*kept, *result["points"]]})
        scenarios[name] = result
    merged["scenarios"] = scenarios
    return merged


def load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return DASH
        if abs(value) < 10 and digits == 0:
            return f"{value:,.2f}"
        return f"{value:,.{digits}f}"
    return str(value)


def _met(met: bool | None) -> str:
    return {True: "**yes**", False: "**no**", None: DASH}[met]


def _measured(t: dict[str, Any]) -> str:
    unit = t["unit"]
    value = fmt(t["measured"], 1 if unit in ("%", "x") else 0)
    return f"{value} {unit}" if t["measured"] is not None else DASH


def targets_table(result: dict[str, Any]) -> list[str]:
    rows = result.get("targets") or []
    if not rows:
        return []
    out = ["| target | goal | measured | met |", "| --- | --- | ---: | :---: |"]
    for t in rows:
        note = f" ({t['note']})" if t.get("note") else ""
        out.append(f"| {t['name']}{note} | {t['target']} | {_measured(t)} | {_met(t['met'])} |")
    return out


def _stamp(result: dict[str, Any]) -> str:
    return (f"_Measured {result.get('measured_at', '?')} with `{result.get('command', '?')}` "
            f"(size `{result.get('size', '?')}`)._")


def _params(result: dict[str, Any]) -> str:
    params = result.get("params") or {}
    return "Setup: " + "; ".join(f"{k.replace('_', ' ')}: {fmt(v)}" for k, v in params.items())


# --------------------------------------------------------------------------- per scenario


def _quota(r: dict[str, Any]) -> list[str]:
    s = r["summary"]
    out = ["| run | engine msg/s | engine s | quota used | rate-limited | reference msg/s | "
           "reference s | speed-up |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, run in enumerate(r["runs"], 1):
        e, ref = run["engine"], run.get("reference") or {}
        out.append(f"| {i} | {fmt(e['messages_per_s'], 1)} | {fmt(e['elapsed_s'], 1)} | "
                   f"{fmt(e['quota_used_pct'], 1)} % | {fmt(e['rate_limited_pct'], 2)} % | "
                   f"{fmt(ref.get('messages_per_s'), 1)} | {fmt(ref.get('elapsed_s'), 1)} | "
                   f"{fmt(run.get('speedup'), 2)}x |")
    last = r["runs"][-1]
    e = last["engine"]
    g = e["gmail"]
    out += ["", f"Engine (last run): {fmt(e['messages'])} messages in {fmt(e['elapsed_s'], 1)} s; "
            f"Gmail charged {fmt(g['units'])} units for {fmt(g['calls'])} API calls in "
            f"{fmt(g['http_batches'])} batch requests; {fmt(g['rate_limited'])} rate-limited "
            f"answers; engine CPU {fmt(e['cpu_s'], 1)} s."]
    if e.get("pacer"):
        p = e["pacer"]
        out.append(f"Pacer probe: {fmt(p['reservations'])} reservations, median "
                   f"{fmt(p['median_units'])} units, median in flight (sent to answered) "
                   f"{fmt(1000 * p['median_in_flight_s'])} ms, weighted by units "
                   f"{fmt(1000 * p.get('unit_weighted_in_flight_s', 0.0))} ms, waited "
                   f"{fmt(p['total_wait_s'], 1)} s in all. Stamping units at the answer holds "
                   f"each unit for in-flight + 1 s, "
                   f"so the pacing bound is 98 % / (1 + in-flight) = "
                   f"{fmt(s.get('pacing_bound_pct'), 1)} % of the ceiling.")
        if "head_s" in p:
            out.append(f"Where the rest went: {fmt(p['head_s'], 2)} s before the first "
                       f"reservation, {fmt(p['tail_s'], 2)} s after the last answer, "
                       f"{fmt(p['pacer_idle_s'], 2)} s in between with no call waiting for "
                       f"the pacer.")
    ref = last.get("reference")
    if ref:
        rg = ref["gmail"]
        out.append(f"Reference (last run): {fmt(ref['messages'])} messages from "
                   f"{fmt(ref['threads_fetched'])} threads in {fmt(ref['elapsed_s'], 1)} s "
                   f"({'whole mailbox' if ref['complete'] else 'a slice'}); Gmail charged "
                   f"{fmt(rg['units'])} units ({fmt(ref['quota_used_pct'], 1)} % of the "
                   f"ceiling) for {fmt(rg['calls'])} calls.")
    if s.get("compare_engine_path"):
        out.append(f"Compared engine `{s['compare_engine_path']}` (same runs, its own simulator "
                   f"process and mailbox copy): {fmt(s['compare_messages_per_s'], 1)} msg/s, "
                   f"quota used {fmt(s['compare_quota_used_pct'], 1)} %, rate-limited "
                   f"{fmt(s['compare_rate_limited_pct'], 2)} %, "
                   f"{fmt(s['compare_ratio'], 2)}x the engine, "
                   f"{fmt(s.get('compare_speedup_vs_reference'), 2)}x the reference.")
    out.append(f"Ceilings at 250 units/s: messages.get (5 units a message) "
               f"{fmt(s['ceiling_messages_per_s_messages_get'])} msg/s; threads.get (10 units "
               f"a thread of 3) {fmt(s['ceiling_messages_per_s_threads_get'])} msg/s.")
    return out


def _ingest(r: dict[str, Any]) -> list[str]:
    out = ["CPU per message, by process (ms): engine / simulator / PostgreSQL; "
           "\"other\" is every other CPU second the machine spent meanwhile (process "
           "start-up, the harness, other programs).", "",
           "| run | msg/s end to end | s | engine | simulator | PostgreSQL | other CPU s | "
           "engine ceiling msg/s | machine busy | peak RSS |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, run in enumerate(r["runs"], 1):
        out.append(f"| {i} | {fmt(run['messages_per_s'])} | {fmt(run['elapsed_s'], 1)} | "
                   f"{fmt(run['engine_cpu_ms_per_message'], 3)} | "
                   f"{fmt(run['simulator_cpu_ms_per_message'], 3)} | "
                   f"{fmt(run.get('postgres_cpu_ms_per_message'), 3)} | "
                   f"{fmt(run.get('other_cpu_s'), 1)} | "
                   f"{fmt(run['engine_only_ceiling_messages_per_s'])} | "
                   f"{fmt(run['machine_busy_pct'])} % | {fmt(run['peak_rss_mb'])} MB |")
    cmp_ = r.get("compare")
    if cmp_:
        out += ["", f"Compared engine `{cmp_['engine_path']}` (runs alternating with the ones "
                f"above): {fmt(cmp_['messages_per_s'])} msg/s end to end "
                f"({fmt(cmp_['ratio_messages_per_s'], 2)}x, median of per-pair ratios), engine "
                f"CPU {fmt(cmp_['engine_cpu_ms_per_message'], 3)} ms/msg "
                f"({fmt(cmp_['ratio_engine_cpu'], 2)}x), simulator CPU "
                f"{fmt(cmp_['simulator_cpu_ms_per_message'], 3)} ms/msg, engine ceiling "
                f"{fmt(cmp_['engine_only_ceiling_messages_per_s'])} msg/s."]
    prof = (r.get("profiles") or {}).get("cprofile")
    if prof and prof.get("categories"):
        out += ["", f"Where the engine's time goes (cProfile run, parse inline; "
                f"{fmt(prof['profiled_wall_s'], 1)} s wall, {fmt(prof['busy_s'], 1)} s busy; "
                f"raw profile `bench/results/{prof['file']}`):", "",
                "| category | seconds | share of busy |", "| --- | ---: | ---: |"]
        for c in prof["categories"]:
            share = f"{100 * c['share_of_busy']:.1f} %" if c["share_of_busy"] is not None else ""
            out.append(f"| {c['category']} | {fmt(c['seconds'], 2)} | {share} |")
        out += ["", "Top functions by own time:", "",
                "| function | calls | own s | cumulative s |", "| --- | ---: | ---: | ---: |"]
        for f in prof["top_functions"][:12]:
            out.append(f"| `{f['function']}` | {fmt(f['calls'])} | {fmt(f['tottime_s'], 2)} | "
                       f"{fmt(f['cumtime_s'], 2)} |")
    tree = (r.get("profiles") or {}).get("pyinstrument")
    if tree and tree.get("file"):
        out += ["", f"pyinstrument tree of a profiled run: `bench/results/{tree['file']}`."]
    return out


def _memory(r: dict[str, Any]) -> list[str]:
    out = ["| messages | peak RSS | RSS before the sync | highest RSS by quarter of the sync | "
           "sync s | measured | source |", "| ---: | ---: | ---: | --- | ---: | --- | --- |"]
    for p in r["points"]:
        quarters = " / ".join(fmt(q) for q in p.get("rss_quartiles_mb") or []) or DASH
        out.append(f"| {fmt(p['messages'])} | {fmt(p['peak_rss_mb'])} MB | "
                   f"{fmt(p.get('rss_before_sync_mb'))} MB | {quarters} | "
                   f"{fmt(p.get('elapsed_s'), 1)} | "
                   f"{p.get('measured_at', r.get('measured_at', ''))} | {p.get('source', '')} |")
    return out


def _freshness(r: dict[str, Any]) -> list[str]:
    out = ["| Gmail latency | changes | committed | p50 | p90 | p99 | max | syncs | "
           "consumer CPU |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for v in r["variants"]:
        out.append(f"| {v['gmail_latency_ms']:g} ms | {fmt(v['changes'])} | "
                   f"{fmt(v['committed'])} | {fmt(v['p50_ms'])} ms | {fmt(v['p90_ms'])} ms | "
                   f"{fmt(v['p99_ms'])} ms | {fmt(v['max_ms'])} ms | {fmt(v['syncs'])} | "
                   f"{fmt(v['consumer_cpu_s'], 1)} s |")
    return out


def _consumer(r: dict[str, Any]) -> list[str]:
    out = ["| run | notifications | settled/s (from ready) | steady/s | syncs | "
           "per sync | statuses | behind after |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for i, run in enumerate(r["runs"], 1):
        statuses = ", ".join(f"{k} {v}" for k, v in sorted((run["statuses"] or {}).items()))
        out.append(f"| {i} | {fmt(run['notifications'])} | {fmt(run['notifications_per_s'])} | "
                   f"{fmt(run['steady_notifications_per_s'])} | {fmt(run['syncs'])} | "
                   f"{fmt(run['notifications_per_sync'], 1)} | {statuses} | "
                   f"{fmt(run['services_behind_after'])} |")
    return out


def _transport(r: dict[str, Any]) -> list[str]:
    out = ["| transport | messages/s | seconds (median) |", "| --- | ---: | ---: |"]
    for row in r["rows"]:
        out.append(f"| {row['transport']} | {fmt(row['messages_per_s'])} | "
                   f"{fmt(row['seconds'], 2)} |")
    return out


def _imports(r: dict[str, Any]) -> list[str]:
    out = ["| model | messages | seconds | units | calls | rate-limited | quota used "
           "(burst incl.) | of the sustained rate | user window |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, p in r["by_profile"].items():
        g = p["gmail"]
        out.append(f"| {name} | {fmt(p['messages'])} | {fmt(p['elapsed_s'], 1)} | "
                   f"{fmt(g['units'])} | {fmt(g['calls'])} | {fmt(g['rate_limited'])} | "
                   f"{fmt(p['quota_used_pct'], 1)} % | {fmt(p['of_sustained_rate_pct'], 1)} % "
                   f"| {fmt(p['user_window_s'], 1)} s |")
    i, k, pr = r["inbox_first"], r["killed"], r["project"]
    out += ["",
            f"Inbox first: the {fmt(i['threads_wanted'])} threads with the newest INBOX mail "
            f"({fmt(i['messages_wanted'])} messages) of a {fmt(i['messages'])}-message "
            f"mailbox were committed {fmt(i['seconds'], 1)} s after the connect's sync began "
            f"({fmt(i['committed_by_then'])} messages stored and {fmt(i['units_by_then'])} "
            "units spent by then).",
            "",
            f"SIGKILL at {fmt(100 * (k['killed_at_fraction'] or 0), 0)} % stored: "
            f"{fmt(k['units_before_kill'])} units before the kill, {fmt(k['units_in_all'])} in "
            f"all with the resumed import, against {fmt(k['uninterrupted_units'])} "
            f"uninterrupted: {fmt(k['charged_again_pct'], 2)} % charged again "
            f"({fmt(k['rows'])} messages mirrored at the end).",
            "",
            f"Project budget: {pr['processes']} processes x "
            f"{fmt(pr['mailboxes'] // pr['processes'])} mailboxes "
            f"({pr['at_once_per_process']} importing at a time in each, "
            f"{fmt(pr['messages_per_mailbox'])} messages each), budget "
            f"{fmt(pr['project_units_per_window'])} units per {fmt(pr['project_window_s'], 1)} s: "
            f"{fmt(pr['project_refusals'])} project refusals, highest window "
            f"{fmt(pr['peak_window_units'])} units ({fmt(pr['peak_pct_of_budget'], 1)} % of the "
            f"budget), {fmt(pr['project_used_pct'], 1)} % of the budget used over "
            f"{fmt(pr['elapsed_s'], 1)} s, {fmt(pr['messages'])} messages, "
            f"{fmt(pr['failures'])} failed imports."]
    f = r.get("fresh_during_import")
    if f:
        out += ["",
                f"New mail while a {fmt(f['mailbox_messages'])}-message mailbox imports "
                f"(2026 model in real time; the import in one process, the consumer in "
                f"another, after {fmt(f['warmup_s'], 0)} s of import): {fmt(f['changes'])} "
                f"messages at {fmt(f['rate_per_s'], 1)}/s, p50 {fmt(f['p50_ms'])} ms, p99 "
                f"{fmt(f['p99_ms'])} ms, max {fmt(f['max_ms'])} ms from delivery to commit, "
                f"{fmt(f['missing'])} not committed; the import had done "
                f"{fmt(f['import_done'])} of {fmt(f['import_total'])} and was "
                f"{'still running' if f['import_running_throughout'] else 'over'} at the end."]
    return out


DETAILS = {"quota": _quota, "ingest": _ingest, "memory": _memory, "freshness": _freshness,
           "consumer": _consumer, "transport": _transport, "imports": _imports}


def scenario_block(result: dict[str, Any]) -> str:
    lines = [f"### {result.get('title', result['scenario'])}", "", _stamp(result)]
    if result.get("status") == "not_runnable":
        lines += ["", f"**Not runnable:** {result.get('reason')}"]
        return "\n".join(lines)
    if result.get("status") == "error":
        lines += ["", f"**Failed:** {result.get('reason')}"]
        return "\n".join(lines)
    lines += ["", _params(result), ""]
    lines += targets_table(result)
    details = DETAILS.get(result["scenario"])
    if details:
        lines += ["", *details(result)]
    return "\n".join(lines)


def environment_block(environment: dict[str, Any]) -> str:
    m, v = environment["machine"], environment["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    return "\n".join([
        "| | |", "| --- | --- |",
        f"| machine | {m['cores']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']} |",
        f"| load average when the last command started | {m.get('load_at_start')} |",
        f"| versions | {versions} |",
        f"| PostgreSQL | {environment.get('postgres_source')} |",
        f"| last command | `{environment['command']}` at {environment['started_at']}, "
        f"{fmt(environment.get('duration_s'), 0)} s |",
    ])


def summary_block(scenarios: dict[str, Any], earlier: str = "") -> str:
    """Every target of ``scenarios``; a scenario they lack keeps its rows of ``earlier``
    (the block as BENCHMARKS.md had it: results files are not kept in the tree)."""
    out = ["| scenario | target | goal | measured | met | measured at |",
           "| --- | --- | --- | ---: | :---: | --- |"]
    kept = _rows_by_title(earlier)
    for name in ORDER:
        r = scenarios.get(name)
        if not r:
            out += kept.get(TITLES[name], [])
            continue
        if r.get("status") in ("not_runnable", "error"):
            status = r["status"].replace("_", " ")
            out.append(f"| {r.get('title', name)} | {DASH} | {DASH} | {status} | {DASH} | "
                       f"{r.get('measured_at', '')} |")
            continue
        for t in r.get("targets") or []:
            out.append(f"| {r.get('title', name)} | {t['name']} | {t['target']} | "
                       f"{_measured(t)} | {_met(t['met'])} | {r.get('measured_at', '')} |")
    return "\n".join(out)


def _rows_by_title(block: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in block.splitlines()[2:]:
        if line.startswith("| "):
            rows.setdefault(line[2:].split(" | ", 1)[0], []).append(line)
    return rows


def _block(text: str, name: str) -> str:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    found = re.search(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), text, re.DOTALL)
    return found.group(1) if found else ""


def _replace(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    text = _replace(text, "environment", environment_block(data["environment"]))
    text = _replace(text, "summary",
                    summary_block(data["scenarios"], _block(text, "summary")))
    for name in ORDER:
        if name in data["scenarios"]:
            text = _replace(text, name, scenario_block(data["scenarios"][name]))
    path.write_text(text)
