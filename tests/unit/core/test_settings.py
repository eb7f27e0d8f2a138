"""Settings: defaults, every variable parsed, one clear error naming the variable."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path

import pytest

from delightbridge.core import demo_dir
from delightbridge.core.errors import ConfigError, DemoAlreadyRunning
from delightbridge.core.settings import Settings, variable_names

ROOT = Path(__file__).resolve().parents[3]
KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def test_defaults_need_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.gmail_base_url == "https://gmail.googleapis.com/gmail/v1/"
    assert settings.gmail_batch_uri == "https://gmail.googleapis.com/batch/gmail/v1"
    assert settings.gmail_batch_size == 50
    assert settings.topic_path == "projects/delightbridge-local/topics/gmail-push"
    assert settings.token_encryption_key is None


def test_every_variable_is_read() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:pw@db:5432/app",
        "AUTH_SECRET": "s" * 32,
        "ADMIN_EMAILS": "Lead@Example.com, ops@example.com",
        "GOOGLE_CLIENT_ID": "cid.apps.googleusercontent.com",
        "GOOGLE_CLIENT_SECRET": "csecret",
        "GOOGLE_OAUTH_TOKEN_URI": "http://127.0.0.1:9/token",
        "GMAIL_API_ENDPOINT": "http://127.0.0.1:8080/prefix/",
        "GMAIL_BATCH_SIZE": "1",
        "PUBSUB_PROJECT": "my-project",
        "PUBSUB_TOPIC": "projects/other-project/topics/gmail",
        "PUBSUB_SUBSCRIPTION": "gmail-sync",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
        "TOKEN_ENCRYPTION_KEY": KEY,
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "TEXT",
        "DELIGHTBRIDGE_DATA_DIR": "/var/lib/dbsync",
    }
    s = Settings.from_env(env)
    assert s.database_url == env["DATABASE_URL"]
    assert s.admin_emails == frozenset({"lead@example.com", "ops@example.com"})
    assert s.gmail_base_url == "http://127.0.0.1:8080/prefix/gmail/v1/"
    assert s.gmail_batch_uri == "http://127.0.0.1:8080/prefix/batch/gmail/v1"
    assert s.gmail_batch_size == 1
    assert s.topic_path == "projects/other-project/topics/gmail"
    assert s.subscription_path == "projects/my-project/subscriptions/gmail-sync"
    assert s.token_encryption_key == bytes(range(32))
    assert (s.log_level, s.log_format) == ("DEBUG", "text")
    assert s.data_dir == Path("/var/lib/dbsync")
    assert set(s.secret_values()) >= {"s" * 32, "csecret", "pw"}
    # Secrets are not in the repr that might end up in a log line.
    assert "csecret" not in repr(s)
    assert "s" * 32 not in repr(s)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("DATABASE_URL", "mysql://x/y", "postgresql://"),
        ("DATABASE_URL", "postgresql://host:99999/db", "invalid port"),
        ("DATABASE_URL", "postgresql://host:5432", "must name a database"),
        ("GMAIL_API_ENDPOINT", "ftp://x", "http(s) URL"),
        ("GMAIL_API_ENDPOINT", "https://x/?a=1", "query string"),
        ("GOOGLE_OAUTH_TOKEN_URI", "not a url", "http(s) URL"),
        ("GMAIL_BATCH_SIZE", "0", "from 1 to 100"),
        ("GMAIL_BATCH_SIZE", "101", "from 1 to 100"),
        ("GMAIL_BATCH_SIZE", "fifty", "integer"),
        ("ADMIN_EMAILS", "lead@example.com, nobody", "'nobody' is not one"),
        ("PUBSUB_PROJECT", "Bad_Project", "project id"),
        ("PUBSUB_TOPIC", "goog-topic", "topic name"),
        ("PUBSUB_SUBSCRIPTION", "projects/BAD/subscriptions/s", "invalid project"),
        ("PUBSUB_EMULATOR_HOST", "localhost", "host:port"),
        ("TOKEN_ENCRYPTION_KEY", "c2hvcnQ=", "32 bytes"),
        ("TOKEN_ENCRYPTION_KEY", "***not base64***", "base64"),
        ("LOG_LEVEL", "loud", "DEBUG, INFO"),
        ("LOG_FORMAT", "xml", "json or text"),
    ],
)
def test_invalid_value_names_the_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert problem in message
    assert "\n" not in message


def test_errors_never_echo_secret_values() -> None:
    secret_url = "mysql://admin:hunter2-very-secret@db/x"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": secret_url})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"TOKEN_ENCRYPTION_KEY": "dG9vLXNob3J0LXNlY3JldA=="})
    assert "dG9vLXNob3J0" not in str(caught.value)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text('GMAIL_BATCH_SIZE=7\nPUBSUB_TOPIC="from-file"\n# comment\n')
    settings = Settings.from_env(
        {"DELIGHTBRIDGE_ENV_FILE": str(env_file), "PUBSUB_TOPIC": "from-env"}
    )
    assert settings.gmail_batch_size == 7
    assert settings.pubsub_topic == "from-env"


def test_dot_env_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("GMAIL_BATCH_SIZE=9\n")
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).gmail_batch_size == 9


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DELIGHTBRIDGE_ENV_FILE: no such file"):
        Settings.from_env({"DELIGHTBRIDGE_ENV_FILE": str(tmp_path / "nope.env")})


def test_invalid_value_in_env_file_is_reported_like_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GMAIL_BATCH_SIZE=many\n")
    with pytest.raises(ConfigError, match=r"^GMAIL_BATCH_SIZE: must be an integer"):
        Settings.from_env({"DELIGHTBRIDGE_ENV_FILE": str(env_file)})


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_variable_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = [name for name in variable_names() if not re.search(rf"\b{name}\b", text)]
    assert missing == []


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Path):
        return f"./{value}"
    return str(value)


def test_the_readme_table_shows_the_declared_defaults() -> None:
    """README's configuration table, row by row (``A`` / ``B`` | ``a`` / ``b``), against
    the declarations in delightbridge/core/settings.py."""
    declared = {f.metadata["variable"].name: getattr(Settings(), f.name)
                for f in dataclasses.fields(Settings)}
    checked = 0
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        for name, shown in zip(names, defaults if len(defaults) == len(names) else [],
                               strict=False):
            value = declared.get(name)
            if value is None or isinstance(value, tuple | frozenset | dict) or not value:
                continue
            if name == "LOG_FORMAT":  # text on a terminal: the table says so
                continue
            assert f"`{_shown(value)}`" == shown, (name, shown, value)
            checked += 1
    assert checked >= 25


def test_every_example_value_is_valid() -> None:
    """Each ``NAME=value`` of .env.example (uncommented, it would be read) parses."""
    for line in (ROOT / ".env.example").read_text().splitlines():
        found = re.fullmatch(r"# ([A-Z][A-Z0-9_]+)=(\S.*)", line)
        if not found or found.group(1) not in variable_names():
            continue
        name, value = found.groups()
        if name == "GMAIL_QUOTA_UNITS_PER_SECOND":
            continue
        Settings.from_env({name: value, **(
            {"EVENTS_SECRET": "e" * 32} if name == "EVENTS_URL" else {})})


@pytest.mark.parametrize("secret", ["short", "x" * 31, "   padded-but-short   "])
def test_a_weak_auth_secret_is_refused(secret: str) -> None:
    # Anyone who guesses AUTH_SECRET forges admin sessions: at least 32 characters, as
    # ``npx auth secret`` gives (44). The value is never echoed.
    with pytest.raises(ConfigError, match="AUTH_SECRET: must be at least 32 characters") as err:
        Settings.from_env({"AUTH_SECRET": secret})
    assert secret.strip() not in str(err.value)
    assert Settings.from_env({"AUTH_SECRET": "s" * 32}).auth_secret == "s" * 32


def test_a_running_demos_settings_come_between_the_env_file_and_the_environment(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=ERROR\nPUBSUB_TOPIC=from-file\n")
    environ = {"DELIGHTBRIDGE_DATA_DIR": str(data_dir), "PUBSUB_PROJECT": "from-environ"}

    def read() -> Settings:
        return Settings.from_env(environ, env_file=env_file, demo=True)

    with demo_dir.hold(data_dir):
        demo_dir.write_env(data_dir, {"DATABASE_URL": "postgresql://demo@/x?host=/tmp/s",
                                      "PUBSUB_TOPIC": "from-demo",
                                      "PUBSUB_PROJECT": "from-demo",
                                      "AUTH_SECRET": "s" * 40})
        settings = read()
        assert settings.database_url == "postgresql://demo@/x?host=/tmp/s"
        assert settings.pubsub_topic == "from-demo"  # over the file
        assert settings.pubsub_project == "from-environ"  # under the environment
        assert settings.log_level == "ERROR"
        assert Settings.from_env(environ, env_file=env_file).database_url is None  # opt-in
        with pytest.raises(DemoAlreadyRunning, match="already running"), \
                demo_dir.hold(data_dir):
            pass
    # Stopped (the lock is free): its file, even if left behind, is not read.
    demo_dir.write_env(data_dir, {"DATABASE_URL": "postgresql://stale@/x"})
    assert read().database_url is None
