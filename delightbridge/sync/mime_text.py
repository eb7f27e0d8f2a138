"""Text-level helpers for Gmail payloads: base64url, charsets, RFC 2047, sanitising.

Every function here is pure and total: malformed input yields the best text that can
be read plus a human-readable note of what could not, never an exception. The notes
end up in ``emails.parse_problems``.

Two kinds of output string exist, and every string the sync stores is one of them:

* *text* (bodies): may span lines; NUL is removed (PostgreSQL ``text`` cannot hold it)
  and lone surrogates, which UTF-8 cannot encode, become U+FFFD.
* *lines* (headers, names, ids, filenames): additionally, every run of whitespace that
  contains a line break or other control character collapses to one space, so an
  injected CR/LF cannot start a new header or log line anywhere downstream.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

__all__ = [
    "b64url_decode",
    "clean_line",
    "clean_text",
    "decode_bytes",
    "decode_rfc2047",
    "plain_to_html",
]

# Control characters that may never appear in a single-line value: C0 (CR, LF, VT,
# FF, FS, GS, RS ... which str.splitlines() also honours), DEL, C1 (NEL) and the
# Unicode line and paragraph separators.
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_RUN = re.compile(f"[ {_CONTROL}]*[{_CONTROL}][ {_CONTROL}]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Make ``value`` storable as PostgreSQL text: drop NUL, replace lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value  # no surrogate can hide in ASCII
    return _SURROGATE.sub("\ufffd", value)


def clean_line(value: str) -> str:
    """``clean_text`` plus: one line, with no control characters, trimmed.

    Any run of whitespace that contains a control character (a folded header's
    CRLF + WSP, an injected ``\\r\\n``, a tab) becomes a single space.
    """
    if value.isascii() and value.isprintable():
        return value.strip()  # the common case: nothing to replace (no control, no surrogate)
    value = clean_text(value)
    return _CONTROL_RUN.sub(" ", value).strip()


# --------------------------------------------------------------------------- base64url

_B64URL_ALPHABET = re.compile(r"[^A-Za-z0-9_-]")
_B64URL_CLEAN = re.compile(r"[A-Za-z0-9_-]*=*")


def b64url_decode(data: str) -> tuple[bytes, str | None]:
    """Decode Gmail's base64url (padding optional), tolerating the standard alphabet.

    Returns the bytes and ``None``, or the bytes that could be recovered and a note.
    """
    if _B64URL_CLEAN.fullmatch(data):  # what Gmail sends: decoded as is, in one pass
        text = data.rstrip("=")
        if len(text) % 4 != 1:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), None
    text = data.translate(str.maketrans("+/", "-_")).rstrip("=")
    text = "".join(text.split())
    problems = []
    if _B64URL_ALPHABET.search(text):
        text = _B64URL_ALPHABET.sub("", text)
        problems.append("invalid base64url characters were skipped")
    if len(text) % 4 == 1:
        # One dangling character carries fewer than 8 bits: it cannot be decoded.
        text = text[:-1]
        problems.append("truncated base64url data: the last character was dropped")
    problem = "; ".join(problems) or None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), problem
    except (binascii.Error, ValueError):  # pragma: no cover - input is sanitised above
        return b"", "undecodable base64url data"


# ------------------------------------------------------------------------- charsets

# Labels that mail in the wild uses but Python does not know, and labels whose bytes
# are in practice written by the Windows superset (the WHATWG Encoding Standard makes
# the same substitutions for the web).
_CHARSET_ALIASES = {
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "euc-kr": "cp949",
    "euc_kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "x-windows-949": "cp949",
    "windows-949": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}

# Python codecs that are text encodings but not charsets anyone labels mail with; some
# turn escape sequences into arbitrary characters. Never decode mail with them.
_REFUSED_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "palmos"}
)

# Declared charsets whose byte streams are so often really UTF-8 that valid UTF-8 with
# non-ASCII characters is taken as the truth (real Latin-1 text is essentially never
# valid UTF-8 beyond ASCII).
_WESTERN_SINGLE_BYTE = frozenset({"cp1252", "iso8859-15", "cp1254"})


def _codec_for(label: str) -> str | None:
    """The Python codec to decode ``label`` with, or ``None`` when it is unusable."""
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name or len(name) > 40:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` declared as ``charset``; never fails.

    Order: the declared charset strictly (its common superset, see above); then UTF-8
    strictly (charsets lie); then the declared charset with U+FFFD for what it cannot
    map. Without a usable declaration: UTF-8, then windows-1252, then Latin-1 (which
    maps every byte). Returns the text and a note when the result is a guess or lossy.
    The text still needs ``clean_text`` (NUL) before storage.
    """
    label = (charset or "").strip()
    codec = _codec_for(label) if label else None
    if codec is None:
        return _decode_undeclared(data, label)

    if codec in _WESTERN_SINGLE_BYTE and not data.isascii():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text, f"declared charset {label!r} but the content is UTF-8"
    try:
        return data.decode(codec), None
    except UnicodeDecodeError:
        pass
    except Exception:  # exotic codecs may raise anything on hostile bytes
        return data.decode("utf-8", "replace"), f"charset {label!r} failed; decoded as UTF-8"
    try:
        return data.decode("utf-8"), f"declared charset {label!r} but the content is UTF-8"
    except UnicodeDecodeError:
        pass
    if codec == "cp1252":
        # cp1252 leaves five bytes unmapped; Latin-1 maps them all, losslessly.
        return data.decode("latin-1"), None
    try:
        text = data.decode(codec, "replace")
    except Exception:
        text = data.decode("utf-8", "replace")
    return text, f"invalid {label} bytes were replaced with U+FFFD"


def _decode_undeclared(data: bytes, label: str) -> tuple[str, str | None]:
    note = f"unknown charset {clean_line(label)[:40]!r}" if label else None
    try:
        return data.decode("utf-8"), (f"{note}; decoded as UTF-8" if note else None)
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, f"{note or 'no charset declared'}; not UTF-8, decoded as windows-1252"


# ------------------------------------------------------------------------- RFC 2047

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    if encoding in "bB":
        decoded, problem = b64url_decode(payload)
        return None if problem and not decoded else decoded
    raw = payload.replace("_", " ").encode("ascii", "replace")
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_rfc2047(value: str) -> tuple[str, list[str]]:
    """Decode RFC 2047 encoded-words in a header value (tolerantly).

    Whitespace between adjacent encoded-words is dropped, as the RFC says; adjacent
    words in the same charset are decoded together, because senders split multi-byte
    characters across words. Unknown charsets fall back like bodies do. The result is
    not yet cleaned: callers apply ``clean_line``.
    """
    if "=?" not in value:
        return value, []
    out: list[str] = []
    problems: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            text, note = decode_bytes(bytes(pending), pending_charset)
            out.append(text)
            if note:
                problems.append(f"encoded header text: {note}")
        pending.clear()
        pending_charset = None

    position = 0
    for match in _ENCODED_WORD.finditer(value):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue  # a malformed word stays in the output as literal text
        between = value[position : match.start()]
        charset = match.group(1).split("*", 1)[0]  # drop an RFC 2231 language suffix
        if pending_charset is None or (between and not between.isspace()):
            flush()
            out.append(between)
        elif charset.lower() != pending_charset.lower():
            flush()
        if pending_charset is None:
            pending_charset = charset
        pending.extend(data)
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out), problems


# --------------------------------------------------------------------------- bodies


def plain_to_html(text: str) -> str:
    """The web app's rendering of a text/plain body: escaped, in one ``<p>``.

    Same escaping and markup as the DelightBridge web app's own sync (``& < > " '``
    escaped, ``'`` as ``&#39;``, every line break as ``<br />``), so rows written by
    either read the same; CRLF and lone CR count as one line break.
    """
    escaped = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n")
    return "<p>" + escaped.replace("\n", "<br />") + "</p>"
