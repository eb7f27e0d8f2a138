"""The history fold and token sealing."""

from __future__ import annotations

import pytest

from delightbridge.core.errors import TokenDecryptionError
from delightbridge.sync import crypto, history


def _m(mid: str) -> dict[str, object]:
    return {"message": {"id": mid, "threadId": "t"}}


def test_plan_reads_current_state_of_touched_messages_and_deletes_deleted_ones() -> None:
    records = [
        {"id": "101", "messagesAdded": [_m("a"), _m("b")]},
        {"id": "105", "labelsAdded": [{**_m("c"), "labelIds": ["STARRED"]}]},
        {"id": "103", "labelsRemoved": [{**_m("a"), "labelIds": ["UNREAD"]}]},
        {"id": "107", "messagesDeleted": [_m("b"), _m("z")]},
        {"id": "108", "messages": [_m("ignored-without-type")]},
    ]
    plan = history.plan(records)
    assert plan.fetch == {"a", "c"}
    assert plan.delete == {"b", "z"}
    assert plan.last_record_id == 108


def test_plan_tolerates_odd_records() -> None:
    plan = history.plan([{"id": "x"}, {"messagesAdded": [{"message": {}}, "junk", None]},
                         {"labelsAdded": None}])
    assert plan == history.HistoryPlan(frozenset(), frozenset(), None)


KEY = bytes(range(32))
RING = crypto.Keyring(KEY)


def test_seal_roundtrip_and_plaintext_passthrough() -> None:
    sealed = crypto.seal("1//refresh", RING, account_id="svc", column="refresh_token")
    assert sealed.startswith("enc:v1:")
    assert "refresh" not in sealed
    assert crypto.unseal(sealed, RING, account_id="svc", column="refresh_token") == "1//refresh"
    assert crypto.unseal("plain-token", RING, account_id="svc", column="refresh_token") == (
        "plain-token")
    assert crypto.seal("x", crypto.Keyring(), account_id="svc", column="access_token") == "x"


@pytest.mark.parametrize(
    ("keyring", "account", "column", "problem"),
    [
        (crypto.Keyring(), "svc", "refresh_token", "TOKEN_ENCRYPTION_KEY is unset"),
        (crypto.Keyring(bytes(32)), "svc", "refresh_token", "does not decrypt"),
        (RING, "other-svc", "refresh_token", "does not decrypt"),  # copied onto another row
        (RING, "svc", "access_token", "does not decrypt"),  # moved to another column
    ],
)
def test_unseal_refuses_wrong_key_row_or_column(
    keyring: crypto.Keyring, account: str, column: str, problem: str
) -> None:
    sealed = crypto.seal("1//refresh", RING, account_id="svc", column="refresh_token")
    with pytest.raises(TokenDecryptionError, match=problem) as caught:
        crypto.unseal(sealed, keyring, account_id=account, column=column)
    assert "1//refresh" not in str(caught.value)


def test_rotation_old_keys_open_the_current_key_seals() -> None:
    old, new = bytes(range(32)), bytes(range(1, 33))
    by_old = crypto.seal("tok", crypto.Keyring(old), account_id="svc", column="refresh_token")
    rotated = crypto.Keyring(new, (old,))
    assert crypto.unseal(by_old, rotated, account_id="svc", column="refresh_token") == "tok"
    assert not crypto.is_current(by_old, rotated, account_id="svc", column="refresh_token")
    by_new = crypto.seal("tok", rotated, account_id="svc", column="refresh_token")
    assert crypto.is_current(by_new, rotated, account_id="svc", column="refresh_token")
    # Old keys alone open, and seal nothing: values become plain.
    read_only = crypto.Keyring(None, (old,))
    assert crypto.unseal(by_old, read_only, account_id="svc", column="refresh_token") == "tok"
    assert crypto.is_current("tok", read_only, account_id="svc", column="refresh_token")
