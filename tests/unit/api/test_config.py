"""The connect flow's URLs: from the settings, or computed from the request."""

from __future__ import annotations

from pathlib import Path

import pytest

from delightbridge.api.config import GOOGLE_AUTH_URI, ApiConfig
from delightbridge.core.settings import Settings

PROPOSED = {
    "GOOGLE_OAUTH_AUTH_URI": "https://accounts.example/o/oauth2/v2/auth",
    "PUBLIC_BASE_URL": "https://sync.example.com/delightbridge/",
    "CONNECT_RETURN_URL": "https://app.example.com/settings?tab=services",
}


def test_defaults_without_configuration() -> None:
    config = ApiConfig.from_settings(Settings())
    assert config == ApiConfig(auth_uri=GOOGLE_AUTH_URI, public_base_url=None,
                               connect_return_url=None)


@pytest.mark.skipif(not hasattr(Settings, "public_base_url"),
                    reason="Settings does not declare the API's variables yet")
def test_proposed_variables_reach_the_api(tmp_path: Path) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    config = ApiConfig.from_settings(Settings.from_env(PROPOSED, env_file=env_file))
    assert config == ApiConfig(auth_uri="https://accounts.example/o/oauth2/v2/auth",
                               public_base_url="https://sync.example.com/delightbridge",
                               connect_return_url="https://app.example.com/settings?tab=services")
