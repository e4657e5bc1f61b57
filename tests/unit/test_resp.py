"""RESP2 parsing and encoding of the lean workload client (harness.rawclient)."""

from __future__ import annotations

import pytest

from harness.rawclient import ProtocolError, ReplyError, encode, parse_reply


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b":-1\r\n", -1),
        (b"$-1\r\n", None),
        (b"$0\r\n\r\n", b""),
        (b"$5\r\nhel\r\n\r\n", b"hel\r\n"),  # a bulk may contain CRLF
    ],
)
def test_parses_each_reply_type(raw: bytes, value: object) -> None:
    assert parse_reply(raw) == (value, len(raw))


def test_error_replies_become_reply_errors() -> None:
    parsed = parse_reply(b"-MOVED 3999 127.0.0.1:6381\r\n")
    assert parsed is not None
    err, end = parsed
    assert isinstance(err, ReplyError) and str(err) == "MOVED 3999 127.0.0.1:6381"
    assert end == 28


@pytest.mark.parametrize("raw", [b"", b"+O", b":4", b"$5\r\nhel", b"$5\r\nhello\r"])
def test_incomplete_replies_wait_for_more(raw: bytes) -> None:
    assert parse_reply(raw) is None


def test_parses_from_an_offset_and_leaves_the_rest() -> None:
    buf = b"+OK\r\n:7\r\n$1\r\nx\r\n"
    first = parse_reply(buf)
    assert first == (b"OK", 5)
    second = parse_reply(buf, 5)
    assert second == (7, 9)
    assert parse_reply(buf, 9) == (b"x", len(buf))


def test_unknown_reply_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="'\\*'"):
        parse_reply(b"*1\r\n:1\r\n")


def test_encode_is_a_resp_array_of_bulk_strings() -> None:
    assert encode(b"SADD", b"k", b"12") == b"*3\r\n$4\r\nSADD\r\n$1\r\nk\r\n$2\r\n12\r\n"
