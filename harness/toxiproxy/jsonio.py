"""JSON in and out the way Toxiproxy's Go server does it.

Clients are written against the real server, so the embedded one decodes request bodies
with Go's ``encoding/json`` rules (first value only, keys matched case-insensitively,
``null`` leaves a field alone, integers must be integer literals) and reports failures in
the same ``{"error": ..., "status": ...}`` shape with the same messages where it matters.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ApiError(Exception):
    """An error the API reports as ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


# The messages of Toxiproxy's own errors (api.go), so clients that match on them keep working.
BAD_REQUEST_BODY = "bad request body"
MISSING_FIELD = "missing required field"
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)


def bad_body(detail: str) -> ApiError:
    return ApiError(f"{BAD_REQUEST_BODY}: {detail}", 400)


def missing_field(what: str) -> ApiError:
    return ApiError(f"{MISSING_FIELD}: {what}", 400)


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode(body: bytes) -> object:
    """Decode the first JSON value of ``body`` (Go's ``Decoder.Decode`` ignores the rest)."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise bad_body("EOF")
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise bad_body("unexpected EOF") from None
        if exc.msg == "Expecting value":
            raise bad_body(
                f"invalid character '{text[exc.pos]}' looking for beginning of value"
            ) from None
        raise bad_body(f"invalid character '{text[exc.pos]}' ({exc.msg.lower()})") from None
    except ValueError as exc:  # NaN / Infinity are not JSON for Go
        raise bad_body(str(exc)) from None
    return value


def kind(value: object) -> str:
    """Go's name for a JSON value's kind in "cannot unmarshal" messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def type_error(value: object, where: str, go_type: str) -> ApiError:
    what = kind(value)
    if what == "number" and go_type.startswith(("int", "uint")):  # Go quotes the literal here
        what = f"number {json.dumps(value)}"
    return bad_body(f"json: cannot unmarshal {what} into Go struct field {where} of type {go_type}")


def value_error(value: object, go_type: str) -> ApiError:
    return bad_body(f"json: cannot unmarshal {kind(value)} into Go value of type {go_type}")


def field(obj: Mapping[str, object], name: str) -> object:
    """The value Go would store in field ``name``: keys match case-insensitively, the last
    matching key wins, and ``null`` leaves the field unset (returned as None)."""
    found: object = None
    lname = name.lower()
    for key, value in obj.items():
        if value is not None and (key == name or key.lower() == lname):
            found = value
    return found


def get_str(obj: Mapping[str, object], name: str, struct_name: str) -> str | None:
    value = field(obj, name)
    if value is None or isinstance(value, str):
        return value
    raise type_error(value, f"{struct_name}.{name}", "string")


def get_bool(obj: Mapping[str, object], name: str, struct_name: str) -> bool | None:
    value = field(obj, name)
    if value is None or isinstance(value, bool):
        return value
    raise type_error(value, f"{struct_name}.{name}", "bool")


def as_int64(value: object, where: str) -> int:
    """An int64 as Go decodes it: an integer literal in range, nothing else."""
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    raise type_error(value, where, "int64")


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32, as Toxiproxy stores toxicity."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def as_float32(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float32(float(value))
        if math.isfinite(result):
            return result
    raise type_error(value, where, "float32")


def float32_json(value: float) -> int | float:
    """The number Go's encoder writes for a float32: the shortest text that reads back as
    the same float32 (so 0.1 stays 0.1, and 1.0 is written as 1)."""
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if float32(float(text)) == value:
            return float(text)
    return value


def dumps(value: object) -> bytes:
    """Compact JSON like Go's ``json.Marshal``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
