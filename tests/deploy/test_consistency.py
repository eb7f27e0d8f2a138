"""What the deployment files say about each other and about the service: every command
line they run parses with the real ``delightbridge`` CLI, compose and Kubernetes run
the same commands with the same ports and drain timeout, and deploy/README.md
describes every file."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from delightbridge.cli import main as cli
from tests.deploy.deployfiles import (
    DEPLOY,
    command_list,
    compose,
    dockerfile,
    k8s_documents,
)


def _command_lines() -> list[tuple[str, list[str]]]:
    lines: list[tuple[str, list[str]]] = []
    runtime = len(dockerfile().stage_names()) - 1
    (cmd,) = dockerfile().all("CMD", runtime)
    lines.append(("Dockerfile CMD", cmd.exec_form() or []))
    for name, service in compose()["services"].items():
        build = service.get("build")
        if build and "entrypoint" not in service:
            lines.append((f"compose {name}", command_list(service)))
    for path, doc in k8s_documents():
        if doc["kind"] == "Deployment":
            containers = doc["spec"]["template"]["spec"]["containers"]
        elif doc["kind"] == "CronJob":
            containers = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        else:
            continue
        for container in containers:
            lines.append((f"{path.name} {container['name']}", list(container["args"])))
    return lines


COMMAND_LINES = _command_lines()


def _registered() -> set[str]:
    return {command.name for command in cli.COMMANDS}


def _parse(argv: list[str]) -> argparse.Namespace:
    assert argv[0] in _registered(), f"`delightbridge {argv[0]}` is not a subcommand"
    return cli.build_parser().parse_args(argv)


def test_the_expected_commands_are_deployed() -> None:
    assert {argv[0] for _, argv in COMMAND_LINES} == {
        "serve", "consume", "renew-watches", "migrate", "simulator"}


@pytest.mark.parametrize(("where", "argv"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_command_line_parses_with_the_real_cli(where: str, argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    try:
        _parse(argv)
    except SystemExit:
        pytest.fail(f"{where}: `delightbridge {' '.join(argv)}` is rejected: "
                    f"{capsys.readouterr().err}")


def test_the_parser_check_can_fail(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["serve", "--hots", "0.0.0.0"])
    with pytest.raises(SystemExit):
        _parse(["consume", "--shutdown-timeout", "soon"])


def _k8s_args(name: str) -> list[str]:
    for _, doc in k8s_documents():
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
            args: list[str] = doc["spec"]["template"]["spec"]["containers"][0]["args"]
            return args
    raise AssertionError(name)


def test_compose_and_kubernetes_run_the_same_commands() -> None:
    services: dict[str, Any] = compose()["services"]
    assert command_list(services["api"]) == _k8s_args("delightbridge-api")
    assert command_list(services["consumer"]) == _k8s_args("delightbridge-consumer")
    runtime = len(dockerfile().stage_names()) - 1
    (cmd,) = dockerfile().all("CMD", runtime)
    assert cmd.exec_form() == _k8s_args("delightbridge-api"), "the image's default is the API"


def test_readme_describes_every_deploy_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    files = [p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*")
             if p.is_file() and p.name != "README.md"]
    assert files
    for name in files:
        assert name in readme, f"deploy/README.md does not mention {name}"
