"""JSON in and out the way Toxiproxy's clients expect.

Clients are written against the Go server, so request bodies are read by its rules (first
value only, keys matched case-insensitively, ``null`` leaves a field alone, integers must
be integer literals) and errors keep its ``{"error": ..., "status": ...}`` shape and its
messages for the API's own errors. What is wrong with a malformed body is said in our own
words after Toxiproxy's ``bad request body:`` prefix: clients match on the status only.
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
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)


def bad_body(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(what: str) -> ApiError:
    return ApiError(f"missing required field: {what}", 400)


def expected(what: str, value: object) -> ApiError:
    """A body value of the wrong kind: ``expected an integer for attributes.latency, not "1"``."""
    shown = json.dumps(value)
    return bad_body(f"expected {what}, not {shown if len(shown) <= 60 else shown[:57] + '...'}")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode(body: bytes) -> object:
    """The first JSON value of ``body``; the rest is ignored, as Go's ``Decoder`` does."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise bad_body("empty body, expected JSON")
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        problem = "it ends early" if exc.pos >= len(text) else exc
        raise bad_body(f"not JSON ({problem})") from None
    except ValueError as exc:  # NaN / Infinity
        raise bad_body(f"not JSON ({exc})") from None
    return value


def field(obj: Mapping[str, object], name: str) -> object:
    """The value Go would store in field ``name``: keys match case-insensitively, the last
    matching key wins, and ``null`` leaves the field unset (returned as None)."""
    found: object = None
    lname = name.lower()
    for key, value in obj.items():
        if value is not None and (key == name or key.lower() == lname):
            found = value
    return found


def get_str(obj: Mapping[str, object], name: str) -> str | None:
    value = field(obj, name)
    if value is None or isinstance(value, str):
        return value
    raise expected(f"a string for {name}", value)


def get_bool(obj: Mapping[str, object], name: str) -> bool | None:
    value = field(obj, name)
    if value is None or isinstance(value, bool):
        return value
    raise expected(f"true or false for {name}", value)


def as_int64(value: object, where: str) -> int:
    """An int64 as Go decodes it: an integer literal in range, nothing else (not 1.0)."""
    if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
        return value
    raise expected(f"a 64-bit integer for {where}", value)


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
    raise expected(f"a number for {where}", value)


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
