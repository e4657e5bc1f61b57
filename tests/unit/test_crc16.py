"""harness.crc16: CRC16-XMODEM, hash tags and key → slot mapping."""

from __future__ import annotations

import binascii
import random

import pytest
import redis.crc

from harness.crc16 import SLOTS, crc16, hash_tag, key_for_slot, key_slot


def test_slot_count_is_16384() -> None:
    assert SLOTS == 16384


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x0000),
        (b"123456789", 0x31C3),  # the standard CRC16-XMODEM check value
        (b"A", 0x58E5),
        (b"\x00", 0x0000),
        (b"\xff", 0x1EF0),
    ],
)
def test_crc16_known_vectors(data: bytes, expected: int) -> None:
    assert crc16(data) == expected


def test_crc16_matches_binascii_crc_hqx() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        data = rng.randbytes(rng.randrange(0, 64))
        assert crc16(data) == binascii.crc_hqx(data, 0), data


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        ("123456789", 12739),
        ("", 0),
        ("foo", 12182),
        ("bar", 5061),
        ("hello", 866),
        ("somekey", 11058),  # examples from the CLUSTER KEYSLOT documentation
        ("foo{hash_tag}", 2515),
        ("user1000", 3443),
    ],
)
def test_key_slot_known_values(key: str, slot: int) -> None:
    assert key_slot(key) == slot
    assert key_slot(key.encode()) == slot


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        (b"foo{}{bar}", b"foo{}{bar}"),  # first { is followed by } at once: whole key
        (b"foo{{bar}}zap", b"{bar"),  # from the first { to the first } after it
        (b"foo{bar}{zap}", b"bar"),  # only the first tag counts
        (b"{user1000}.following", b"user1000"),
        (b"{user1000}.followers", b"user1000"),
        (b"no-tag-at-all", b"no-tag-at-all"),
        (b"open{only", b"open{only"),  # no closing brace
        (b"close}only{", b"close}only{"),  # } before { does not close anything
        (b"a}b{c}", b"c"),
        (b"{}", b"{}"),
        (b"{}{a}", b"{}{a}"),  # the empty first tag disables hashing on a tag at all
        (b"{{}}", b"{"),
        (b"{ }", b" "),
        (b"{", b"{"),
        (b"}", b"}"),
        (b"", b""),
    ],
)
def test_hash_tag_rules(key: bytes, hashed: bytes) -> None:
    assert hash_tag(key) == hashed
    assert key_slot(key) == crc16(hashed) % SLOTS


def test_hash_tag_examples_from_the_spec_by_slot() -> None:
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % SLOTS
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")


def test_str_keys_are_utf8_encoded() -> None:
    for key in ["héllo{wörld}", "日本語{キー}", "plain", "{ü}"]:
        assert key_slot(key) == key_slot(key.encode("utf-8"))
    assert key_slot("{ü}x") == key_slot("ü")


def test_bytes_keys_need_not_be_utf8() -> None:
    raw = b"\xff\xfe{\x80\x81}tail"
    assert key_slot(raw) == crc16(b"\x80\x81") % SLOTS


def test_key_slot_is_always_in_range() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        assert 0 <= key_slot(rng.randbytes(rng.randrange(0, 20))) < SLOTS


def _random_keys(rng: random.Random, count: int) -> list[bytes]:
    braces = b"{}{}{}abc:_-0123"
    keys = []
    for i in range(count):
        n = rng.randrange(0, 30)
        if i % 2:
            keys.append(bytes(rng.choice(braces) for _ in range(n)))  # many tag shapes
        else:
            keys.append(rng.randbytes(n))  # arbitrary bytes
    return keys


def test_key_slot_agrees_with_redis_py() -> None:
    rng = random.Random(20240601)
    keys = _random_keys(rng, 4000)
    keys += [b"", b"{", b"}", b"{}", b"{}{}", b"{{}}", b"foo{}{bar}", b"foo{{bar}}zap"]
    mismatches = [k for k in keys if key_slot(k) != redis.crc.key_slot(k)]
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize("slot", [0, 1, 866, 5460, 5461, 8192, 10922, 10923, 12739, 16383])
def test_key_for_slot_round_trip(slot: int) -> None:
    key = key_for_slot(slot)
    assert key.startswith("k")
    assert key_slot(key) == slot
    assert redis.crc.key_slot(key.encode()) == slot


def test_key_for_slot_is_deterministic_and_honours_prefix() -> None:
    assert key_for_slot(100) == key_for_slot(100)
    key = key_for_slot(100, prefix="user:")
    assert key.startswith("user:")
    assert key_slot(key) == 100


def test_key_for_slot_with_a_tagged_prefix_on_its_own_slot() -> None:
    # every key with this prefix hashes on the tag, so only the tag's own slot is reachable
    slot = key_slot("{user}")
    key = key_for_slot(slot, prefix="{user}")
    assert key_slot(key) == slot


@pytest.mark.parametrize("slot", [-1, 16384, 20000, -16384])
def test_key_for_slot_rejects_out_of_range(slot: int) -> None:
    with pytest.raises(ValueError, match=rf"slot {slot} is outside 0\.\.16383"):
        key_for_slot(slot)
