"""deploy/compose.yaml and deploy/compose.env: the compose config as ``docker compose
config`` would resolve it (interpolation with an empty environment), validated by the
compose_spec parser (strict: unknown keys and bad values are errors) when installed,
and its structure: services, dependencies, health checks, commands, secrets."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from delightbridge.core.settings import Settings, variable_names
from tests.deploy.deployfiles import (
    COMPOSE,
    CONSUMER_SETTLE_SECONDS,
    DEPLOY,
    ROOT,
    SECRET_VARIABLES,
    InterpolationError,
    command_list,
    compose,
    compose_env,
    compose_raw,
    duration_seconds,
    interpolate,
    option,
)

APP_SERVICES = {"gmail-simulator", "migrate", "api", "consumer", "renew-watches"}
ONE_SHOT = {"migrate", "pubsub-init"}
EXPECTED_SERVICES = {"postgres", "pubsub", "pubsub-init", *APP_SERVICES}
# service -> {dependency: condition}
EXPECTED_DEPENDENCIES = {
    "postgres": {},
    "pubsub": {},
    "pubsub-init": {"pubsub": "service_healthy"},
    "gmail-simulator": {"pubsub": "service_healthy"},
    "migrate": {"postgres": "service_healthy"},
    "api": {"migrate": "service_completed_successfully",
            "gmail-simulator": "service_healthy"},
    "consumer": {"migrate": "service_completed_successfully",
                 "pubsub-init": "service_completed_successfully",
                 "gmail-simulator": "service_healthy"},
    "renew-watches": {"migrate": "service_completed_successfully",
                      "pubsub-init": "service_completed_successfully",
                      "gmail-simulator": "service_healthy"},
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    resolved = compose()["services"]
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return compose_env()


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short form: service_started
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# ---------------------------------------------------------------- the file as a whole


def test_compose_spec_validation() -> None:
    compose_spec = pytest.importorskip(
        "compose_spec", reason="compose-spec (dev dependency) is not installed")
    parsed = compose_spec.PyCompose.from_json(json.dumps(compose()))
    parsed.to_spec()  # and the pydantic model of the compose specification
    assert set(parsed.services) == EXPECTED_SERVICES


def test_compose_spec_validation_is_strict() -> None:
    compose_spec = pytest.importorskip(
        "compose_spec", reason="compose-spec (dev dependency) is not installed")
    for mutate in (
        lambda s: s["api"]["healthcheck"].update(intervl="5s"),
        lambda s: s["api"]["depends_on"]["migrate"].update(condition="service_done"),
        lambda s: s["consumer"].update(stop_grace_period="soon"),
        lambda s: s["migrate"].update(restart="sometimes"),
    ):
        data = compose()
        mutate(data["services"])
        with pytest.raises(ValueError):
            compose_spec.PyCompose.from_json(json.dumps(data))


def test_docker_compose_config_when_available(tmp_path: Path) -> None:
    """The real ``docker compose config`` where a compose CLI exists (not on this
    machine: no Docker); it resolves and validates without an engine."""
    import shutil

    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        check=False, timeout=30).returncode != 0:
        pytest.skip("no docker compose CLI installed")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_interpolation_resolves_with_an_empty_environment() -> None:
    resolved = compose()
    assert resolved["services"]["api"]["image"] == "delightbridge-sync:local"
    assert compose({"DELIGHTBRIDGE_IMAGE": "r/x:1"})["services"]["api"]["image"] == "r/x:1"


def test_every_dollar_is_escaped_or_has_a_default() -> None:
    """A bare ``$name`` in a command would be replaced by compose (with "" when unset)
    before the shell ever sees it."""

    def walk(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [s for item in node for s in walk(item)]
        if isinstance(node, dict):
            return [s for value in node.values() for s in walk(value)]
        return []

    for text in walk(compose_raw()):
        without_escapes = text.replace("$$", "")
        for match in re.finditer(r"\$(\{[^}]*\}|.?)", without_escapes):
            assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:-[^}]+\}", match.group(0)), \
                f"unescaped or default-less {match.group(0)!r} in {text!r}"


def test_interpolation_helper() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a$$b ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == \
        "a$b v v d d "
    assert interpolate("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(InterpolationError):
        interpolate("${UNSET:?needed}", env)
    with pytest.raises(InterpolationError):
        interpolate("$!", env)


def test_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_app_services_share_one_image_built_from_the_dockerfile(
        services: dict[str, dict[str, Any]]) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, "the build context is the repository root"
        assert (context / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
        assert services[name]["env_file"] == ["compose.env"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["pubsub"]["image"].startswith(
        "gcr.io/google.com/cloudsdktool/google-cloud-cli:")
    assert services["pubsub"]["image"].endswith("emulators")
    for service in services.values():
        assert not service["image"].endswith(":latest")
        assert ":" in service["image"]


def test_dependencies_and_their_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, expected in EXPECTED_DEPENDENCIES.items():
        assert _depends(services[name]) == expected, name
    for name, service in services.items():
        for dep, condition in _depends(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{dep} is not a one-shot service"


def test_no_dependency_cycle(services: dict[str, dict[str, Any]]) -> None:
    order: list[str] = []
    remaining = {name: set(_depends(service)) for name, service in services.items()}
    while remaining:
        ready = sorted(n for n, deps in remaining.items() if deps <= set(order))
        assert ready, f"cycle among {sorted(remaining)}"
        order.extend(ready)
        for n in ready:
            del remaining[n]


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    long_running = EXPECTED_SERVICES - ONE_SHOT - {"renew-watches"}
    for name in long_running:
        check = services[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "start_period"):
            assert duration_seconds(check[key]) > 0, (name, key)
        assert duration_seconds(check["timeout"]) < duration_seconds(check["interval"]), name
        assert check["retries"] >= 3, name
    assert services["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")


def _probe_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    (url,) = re.findall(r"http://[^'\"]+", " ".join(test))
    return url


def test_api_command_and_probe(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    argv = command_list(api)
    assert argv == ["serve", "--host", "0.0.0.0", "--port", "8000", "--ops-port", "9000"]
    assert _probe_url(api) == f"http://127.0.0.1:{option(argv, '--ops-port')}/readyz"
    assert api["ports"] == [f"127.0.0.1:{p}:{p}" for p in (option(argv, "--port"),
                                                           option(argv, "--ops-port"))]


def test_consumer_command_probe_and_grace_period(services: dict[str, dict[str, Any]]) -> None:
    consumer = services["consumer"]
    argv = command_list(consumer)
    assert argv[0] == "consume"
    port = option(argv, "--port")
    assert port is not None
    assert _probe_url(consumer) == f"http://127.0.0.1:{port}/readyz"
    drain = float(option(argv, "--shutdown-timeout") or 0)
    assert drain > 0, "the drain timeout is explicit"
    grace = duration_seconds(consumer["stop_grace_period"])
    assert grace >= drain + CONSUMER_SETTLE_SECONDS + 5, \
        f"stop_grace_period {grace}s leaves no room for a {drain}s drain"
    assert consumer.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_one_shot_and_simulator_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command_list(services["migrate"]) == ["migrate"]
    sim = command_list(services["gmail-simulator"])
    assert sim[0] == "simulator"
    assert option(sim, "--host") == "0.0.0.0"
    emulator = command_list(services["pubsub"])
    assert emulator[:5] == ["gcloud", "beta", "emulators", "pubsub", "start"]
    assert "--host-port=0.0.0.0:8085" in emulator


def test_renewal_runs_the_commands_own_loop(services: dict[str, dict[str, Any]]) -> None:
    renew = services["renew-watches"]
    assert "entrypoint" not in renew, "delightbridge stays PID 1 and gets SIGTERM"
    assert command_list(renew) == ["renew-watches", "--loop"]


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_pubsub_init_runs_the_setup_script_against_the_emulator(
        services: dict[str, dict[str, Any]], env: dict[str, str]) -> None:
    init = services["pubsub-init"]
    assert init["image"] == services["pubsub"]["image"], "the emulator image has gcloud"
    assert init["entrypoint"] == ["bash", "/deploy/pubsub-setup.sh"]
    (volume,) = init["volumes"]
    source, target, mode = volume.split(":")
    assert (COMPOSE.parent / source).resolve() == (DEPLOY / "pubsub-setup.sh").resolve()
    assert target == "/deploy/pubsub-setup.sh"
    assert mode == "ro"
    assert init["env_file"] == ["compose.env"]
    host, port = env["PUBSUB_EMULATOR_HOST"].split(":")
    assert host == "pubsub"
    assert f"--host-port=0.0.0.0:{port}" in command_list(services["pubsub"])


# ---------------------------------------------------------------- compose.env


def test_env_file_holds_only_known_settings_that_parse(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    unknown = set(env) - set(variable_names())
    assert not unknown, f"not settings of the service: {sorted(unknown)}"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    settings = Settings.from_env(env, env_file=empty)  # the service's own parsers
    assert settings.database_url
    assert settings.token_encryption_key
    assert settings.log_format == "json"


def test_env_file_matches_the_services(services: dict[str, dict[str, Any]],
                                       env: dict[str, str]) -> None:
    db = urlsplit(env["DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert db.hostname == "postgres"
    assert db.port == 5432
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    gmail = urlsplit(env["GMAIL_API_ENDPOINT"])
    sim_argv = command_list(services["gmail-simulator"])
    assert gmail.hostname == "gmail-simulator"
    assert str(gmail.port) == option(sim_argv, "--port")
    assert urlsplit(env["GOOGLE_OAUTH_TOKEN_URI"]).netloc == gmail.netloc
    assert env["PUBSUB_EMULATOR_HOST"] == "pubsub:8085"


def test_secrets_are_obvious_local_placeholders(services: dict[str, dict[str, Any]],
                                                env: dict[str, str]) -> None:
    secret_name = re.compile(r"SECRET|PASSWORD|TOKEN|KEY|CREDENTIAL")
    for name in SECRET_VARIABLES:
        assert name in env
    assert "local" in (urlsplit(env["DATABASE_URL"]).password or "")
    assert "local" in env["AUTH_SECRET"]
    assert "local" in env["GOOGLE_CLIENT_SECRET"]
    assert b"local-dev" in base64.b64decode(env["TOKEN_ENCRYPTION_KEY"])
    for name, service in services.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form"
        for key, value in environment.items():
            assert key not in SECRET_VARIABLES, f"{name} sets {key} inline"
            if secret_name.search(key):
                assert "local" in str(value), f"{name}: {key} is not a local placeholder"
        assert name == "postgres" or not environment, f"{name}: settings belong in compose.env"

