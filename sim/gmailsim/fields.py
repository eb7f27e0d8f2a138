"""Google's ``fields`` system parameter: partial responses.

``fields=messages(id,threadId),nextPageToken`` keeps only those members; ``a/b`` is
short for ``a(b)``; ``*`` keeps every member at its level. Lists apply the
selection to each element.
"""

from __future__ import annotations

from typing import Any

from gmailsim import errors

Selection = dict[str, "Selection | None"]
_NAME_CHARS = frozenset("_*$.-")


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.pos = 0

    def fail(self) -> errors.GmailError:
        return errors.bad_request(f"Invalid field selection {self.spec}",
                                  reason="invalidParameter")

    def peek(self, char: str) -> bool:
        return self.pos < len(self.spec) and self.spec[self.pos] == char

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.spec) and (self.spec[self.pos].isalnum()
                                             or self.spec[self.pos] in _NAME_CHARS):
            self.pos += 1
        if start == self.pos:
            raise self.fail()
        return self.spec[start:self.pos]

    def selection(self) -> Selection:
        tree: Selection = {}
        while True:
            path = [self.name()]
            while self.peek("/"):
                self.pos += 1
                path.append(self.name())
            sub: Selection | None = None
            if self.peek("("):
                self.pos += 1
                sub = self.selection()
                if not self.peek(")"):
                    raise self.fail()
                self.pos += 1
            _merge(tree, path, sub)
            if not self.peek(","):
                return tree
            self.pos += 1


def _merge(tree: Selection, path: list[str], sub: Selection | None) -> None:
    node: Selection = tree
    for part in path[:-1]:
        child = node.get(part, {})
        if child is None:
            return  # the whole member is already selected
        node[part] = child
        node = child
    last = path[-1]
    existing = node.get(last, {})
    if last not in node or sub is None:
        node[last] = sub
    elif existing is not None:
        for key, value in sub.items():
            _merge(existing, [key], value)


def parse_fields(spec: str) -> Selection:
    """Parse a field mask; raises a 400 error for a malformed one."""
    parser = _Parser(spec)
    tree = parser.selection()
    if parser.pos != len(spec):
        raise parser.fail()
    return tree


def apply_fields(value: Any, selection: Selection | None) -> Any:
    """``value`` reduced to ``selection`` (None keeps everything)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [apply_fields(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        star = selection["*"]
        return {k: apply_fields(v, selection.get(k, star)) for k, v in value.items()}
    return {k: apply_fields(value[k], sub) for k, sub in selection.items() if k in value}
