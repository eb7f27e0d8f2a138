"""deploy/README.md's compose walkthrough, from the stack up to a synced mailbox.

No container engine is installed here, so the stack's services run on the host, each
with the command compose.yaml gives it and the environment of compose.env (its host
names pointed at the host's processes): the Gmail simulator, the API and the consumer,
against a fresh PostgreSQL database and Google's Pub/Sub emulator (``pubsub-init``'s
topic and subscription are created with the same settings). The walkthrough's own
commands are then read from the README and run in bash, with ``docker compose exec
postgres psql`` and ``docker compose run api`` standing for ``psql`` and the console
script on the host.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from delightbridge.core.settings import Settings, variable_names
from delightbridge.local import pubsub_emulator as emulator_process
from delightbridge.local.pubsub_emulator import free_port
from tests.deploy.deployfiles import DEPLOY, ROOT, compose, compose_env

README = DEPLOY / "README.md"
COMPOSE_CMD = "docker compose -f deploy/compose.yaml"
CLI = Path(sys.executable).parent / "delightbridge"


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]
    ports: dict[int, int]  # the port a README command names -> the host's


def walkthrough() -> list[str]:
    """The README's walkthrough commands, continuation lines joined, comments left out."""
    text = README.read_text()
    match = re.search(r"```sh\n(docker compose -f deploy/compose\.yaml up .*?)```", text,
                      re.DOTALL)
    assert match, "deploy/README.md lost its compose walkthrough"
    commands, current = [], ""
    for line in match.group(1).splitlines():
        if line.startswith("#") or not line.strip():
            continue
        current += line.removesuffix("\\").strip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


def on_the_host(command: str, stack: Stack) -> str | None:
    """The command as run on the host; None for those that start or stop the stack."""
    if command.startswith((f"{COMPOSE_CMD} up", f"{COMPOSE_CMD} down")):
        return None
    command = command.replace(
        f"{COMPOSE_CMD} exec -T postgres psql -U delightbridge -d delightbridge",
        f"psql {shlex.quote(stack.env['DATABASE_URL'])}")
    command = command.replace(f"{COMPOSE_CMD} run -T --rm --no-deps api", str(CLI))
    assert COMPOSE_CMD not in command, f"a compose command this test cannot run: {command}"
    for published, host in stack.ports.items():
        command = command.replace(f"127.0.0.1:{published}", f"127.0.0.1:{host}")
    return command


def _published(service: str) -> list[int]:
    """The host ports ``service`` publishes ("127.0.0.1:HOST:CONTAINER")."""
    ports = compose()["services"][service].get("ports") or []
    return [int(str(p).split(":")[-2]) for p in ports]


async def _listening(port: int) -> None:
    for _ in range(600):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
async def stack(fresh_database: str, pubsub_emulator: str, tmp_path: Path
                ) -> AsyncIterator[Stack]:
    sim, api, ops, consumer = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    env.update(compose_env())
    env.update({
        "DATABASE_URL": fresh_database,
        "GMAIL_API_ENDPOINT": f"http://127.0.0.1:{sim}",
        "GOOGLE_OAUTH_TOKEN_URI": f"http://127.0.0.1:{sim}/token",
        "GOOGLE_OAUTH_AUTH_URI": f"http://127.0.0.1:{sim}/o/oauth2/v2/auth",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{api}",
        "PUBSUB_EMULATOR_HOST": pubsub_emulator,
        "PATH": os.environ.get("PATH", ""),
    })
    settings = Settings.from_env(env, demo=False)
    await asyncio.to_thread(emulator_process.ensure_topic, pubsub_emulator,
                            settings.topic_path, settings.subscription_path)  # pubsub-init
    await asyncio.to_thread(subprocess.run, [str(CLI), "migrate"], env=env, cwd=tmp_path,
                            check=True, capture_output=True)
    services = compose()["services"]
    commands = {
        "gmail-simulator": _with_port(services["gmail-simulator"]["command"], "--port", sim),
        "api": _with_port(_with_port(services["api"]["command"], "--port", api),
                          "--ops-port", ops),
        "consumer": _with_port(services["consumer"]["command"], "--port", consumer),
    }
    processes = []
    try:
        for name, command in commands.items():
            command = [("127.0.0.1" if arg == "0.0.0.0" else arg) for arg in command]
            log = (tmp_path / f"{name}.log").open("w")
            processes.append(await asyncio.create_subprocess_exec(
                str(CLI), *command, env=env, cwd=tmp_path, stdout=log, stderr=log))
            await _listening({"gmail-simulator": sim, "api": api, "consumer": consumer}[name])
        yield Stack(env, {_published("api")[0]: api, _published("api")[1]: ops,
                          _published("consumer")[0]: consumer})
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()


def _with_port(command: list[str], option: str, port: int) -> list[str]:
    command = list(command)
    command[command.index(option) + 1] = str(port)
    return command


def _bash(script: str, stack: Stack) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=stack.env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_the_walkthrough_ends_with_a_synced_mailbox(stack: Stack) -> None:
    commands = [c for c in (on_the_host(c, stack) for c in walkthrough()) if c]
    connect = next(i for i, c in enumerate(commands) if "/connect" in c)
    runs = next(i for i, c in enumerate(commands) if c.rstrip().endswith("/sync/runs"))
    assert connect < runs
    # Steps 1-3 in one bash (COOKIE is set there), the connect's answer last.
    answer = await asyncio.to_thread(_bash, "\n".join(commands[:connect + 1]), stack)
    assert '"ok": true' in answer, answer
    assert '"serviceId": "support"' in answer
    # Step 4: the run list, as an operator would look at it until the import is done.
    prelude = "\n".join(c for c in commands[:connect] if c.startswith("COOKIE="))
    for _ in range(120):
        listed = await asyncio.to_thread(_bash, prelude + "\n" + commands[runs], stack)
        if '"state": "succeeded"' in listed:
            break
        await asyncio.sleep(0.5)
    assert '"state": "succeeded"' in listed, listed
    assert '"trigger": "connect"' in listed
    counted = await asyncio.to_thread(_bash, commands[runs + 1], stack)
    mirrored = int(re.findall(r"^\s*(\d+)\s*$", counted, re.MULTILINE)[0])
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        assert mirrored == await conn.fetchval("SELECT count(*) FROM emails") > 0
    finally:
        await conn.close()
    health = await asyncio.to_thread(_bash, "\n".join(commands[runs + 2:]), stack)
    assert health.count('"ok": true') == 2, health  # the API's and the consumer's /readyz


def test_every_walkthrough_command_maps_to_the_host() -> None:
    fake = Stack({"DATABASE_URL": "postgresql://u@h/db"}, {8000: 1, 9000: 2, 8081: 3})
    mapped = [on_the_host(c, fake) for c in walkthrough()]
    assert mapped[0] is None
    assert mapped[-1] is None  # up and down
    assert all(COMPOSE_CMD not in c for c in mapped if c)
