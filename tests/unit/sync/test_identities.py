"""Gmail's send-as list as the web app's sender identities (pure mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from delightbridge.sync.identities import identities_from, identity_row_id
from delightbridge.sync.threads import SenderIdentity


def _ids(answer: dict[str, Any]) -> list[tuple[str, bool, bool, str]]:
    return [(i.email, i.is_default, i.is_enabled, name) for i, name in identities_from(answer)]


def test_primary_alias_and_verification() -> None:
    answer = {"sendAs": [
        {"sendAsEmail": "Support@Noji.example", "displayName": " Noji ", "isPrimary": True,
         "isDefault": True},
        {"sendAsEmail": "billing@noji.example ", "verificationStatus": "accepted"},
        {"sendAsEmail": "new@noji.example", "verificationStatus": "pending"},
        {"sendAsEmail": "odd@noji.example", "verificationStatus": "ACCEPTED"},
    ]}
    assert _ids(answer) == [
        ("support@noji.example", True, True, "Noji"),
        ("billing@noji.example", False, True, ""),
        ("new@noji.example", False, False, ""),
        ("odd@noji.example", False, True, ""),
    ]


def test_an_alias_made_default_is_the_only_default() -> None:
    answer = {"sendAs": [{"sendAsEmail": "s@x.example", "isPrimary": True},
                         {"sendAsEmail": "b@x.example", "isDefault": True,
                          "verificationStatus": "accepted"}]}
    assert [(e, d) for e, d, _, _ in _ids(answer)] == [("s@x.example", False),
                                                       ("b@x.example", True)]


def test_no_default_marked_makes_the_primary_default() -> None:
    answer = {"sendAs": [{"sendAsEmail": "b@x.example"}, {"sendAsEmail": "s@x.example",
                                                          "isPrimary": True}]}
    assert [(e, d) for e, d, _, _ in _ids(answer)] == [("b@x.example", False),
                                                       ("s@x.example", True)]


@pytest.mark.parametrize("answer", [
    {}, {"sendAs": None}, {"sendAs": "x"}, {"sendAs": [None, 3, {"displayName": "no address"},
                                                       {"sendAsEmail": "  "}]},
])
def test_malformed_answers_list_nothing(answer: dict[str, Any]) -> None:
    assert identities_from(answer) == []


def test_duplicates_keep_the_first_and_ids_follow_the_web_app() -> None:
    answer = {"sendAs": [{"sendAsEmail": "a@x.example", "isDefault": True},
                         {"sendAsEmail": "A@x.example", "verificationStatus": "pending"}]}
    assert identities_from(answer) == [(SenderIdentity("a@x.example", True, True), "")]
    assert identity_row_id("svc-1", "a@x.example") == "sender-svc-1-a@x.example"
