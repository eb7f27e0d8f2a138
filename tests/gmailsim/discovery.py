"""Response schemas from the Gmail discovery document bundled with google-api-python-client,
as JSON Schema, so every simulator response can be validated against them.

Stricter than the document on purpose: no member the schema does not declare
(``additionalProperties: false``), ``int64``/``uint64`` strings must be decimal,
``byte`` strings base64url.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient
import jsonschema

DOCUMENT_PATH = (Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
                 / "gmail.v1.json")


@cache
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def _string(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string"}
    pattern = {"uint64": r"^[0-9]+$", "int64": r"^-?[0-9]+$",
               "byte": r"^[A-Za-z0-9_-]*=*$"}.get(schema.get("format", ""))
    if pattern:
        out["pattern"] = pattern
    if "enum" in schema:
        out["enum"] = schema["enum"]
    return out


def _object(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    props = schema.get("properties")
    if props is not None:
        out["properties"] = {k: _convert(v) for k, v in props.items()}
        out["additionalProperties"] = False
    if "additionalProperties" in schema:
        out["additionalProperties"] = _convert(schema["additionalProperties"])
    return out


def _convert(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"$ref": "#/definitions/" + schema["$ref"]}
    kind = schema.get("type")
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return {"type": "array", "items": _convert(schema.get("items", {}))}
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        unsigned = schema.get("format") in ("uint32", "uint64")
        return {"type": "integer", "minimum": 0} if unsigned else {"type": "integer"}
    if kind in ("boolean", "number"):
        return {"type": kind}
    return {}


@cache
def _definitions() -> dict[str, Any]:
    return {name: _convert(s) for name, s in document()["schemas"].items()}


def _methods(resources: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for resource in resources.values():
        for method in resource.get("methods", {}).values():
            found[method["id"]] = method
        found.update(_methods(resource.get("resources", {})))
    return found


@cache
def methods() -> dict[str, Any]:
    return _methods(document()["resources"])


def response_ref(method_id: str) -> str | None:
    """Schema name of a method's response (``gmail.users.messages.get`` -> ``Message``)."""
    response = methods()[method_id].get("response")
    return response["$ref"] if response else None


def validate(schema_name: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` fits the named schema."""
    schema = {"$ref": f"#/definitions/{schema_name}", "definitions": _definitions()}
    jsonschema.Draft7Validator(schema).validate(body)


def validate_response(method_id: str, body: Any) -> None:
    """Validate ``body`` as the response of ``method_id`` (``gmail.users.history.list``)."""
    ref = response_ref(method_id)
    if ref is None:
        assert body in (None, "", {}), f"{method_id} has no response body, got {body!r}"
        return
    validate(ref, body)


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status", "errors"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["domain", "reason", "message"],
                        "properties": {
                            "domain": {"type": "string"},
                            "reason": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


def validate_error(body: Any, code: int, reason: str | None = None) -> None:
    """``body`` is Google's error envelope for ``code`` (and ``reason``)."""
    jsonschema.validate(body, ERROR_ENVELOPE)
    assert body["error"]["code"] == code
    if reason is not None:
        assert body["error"]["errors"][0]["reason"] == reason
