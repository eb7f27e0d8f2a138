"""An import's decisions, alone: what it fetches, skips or counts as seen."""

from __future__ import annotations

from delightbridge.sync.full import Plan
from delightbridge.sync.imports import Known, LabelSets, sort_out


def test_sort_out_skips_what_is_stored_or_newer_and_a_repair_what_is_unchanged() -> None:
    listed = [("m1", "t1"), ("m2", "t1"), ("m3", "t2"), ("m4", "t3"), ("m5", "t4"),
              ("m6", "t5")]
    known = {
        "m1": Known("email-m1", by_import=True, newer=False, label_ids=["INBOX"]),
        "m2": Known("email-m2", by_import=False, newer=True, label_ids=["INBOX"]),
        "m3": Known("email-m3", by_import=False, newer=False, label_ids=["INBOX", "UNREAD"]),
        "m4": Known("email-m4", by_import=False, newer=False, label_ids=["INBOX"]),
        "m5": Known(None, by_import=False, newer=False, label_ids=None),
    }
    full = sort_out(listed, known, "full", None)
    assert (full.fetch, full.seen, full.skipped) == (
        [("m3", "t2"), ("m4", "t3"), ("m5", "t4"), ("m6", "t5")], [], 2)
    labels = LabelSets({"m3": frozenset({"INBOX", "UNREAD"}), "m4": frozenset({"STARRED"}),
                        "m6": frozenset({"DRAFT"})})
    repair = sort_out(listed, known, "repair", labels)
    # m3 is as Gmail has it (seen); m4's labels changed; m5 is not mirrored yet; m6 is
    # a draft, never mirrored.
    assert (repair.fetch, repair.seen, repair.skipped) == (
        [("m4", "t3"), ("m5", "t4")], ["email-m3"], 3)


def test_a_message_listed_again_is_not_fetched_twice() -> None:
    plan = Plan()
    assert [f.id for f in plan.split([("a", "A"), ("b", "B"), ("b2", "B")])] == ["B", "a"]
    # The inbox, then everything: what was fetched already is not planned again.
    assert plan.split([("a", "A"), ("b", "B"), ("c", "C")])[0].id == "c"
    assert len(plan.split([("a", "A"), ("b", "B"), ("c", "C")])) == 0
