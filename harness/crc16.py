"""Key → slot mapping, as the Redis Cluster specification defines it.

The harness computes slots itself so conformance tests can compare a server's
``CLUSTER KEYSLOT`` against an independent implementation.
"""

from __future__ import annotations

SLOTS = 16384


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """CRC16-XMODEM (poly 0x1021, init 0): the checksum Redis Cluster hashes keys with."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: the first non-empty ``{...}``, else the key."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes | str) -> int:
    """Slot of ``key`` (str keys are UTF-8 encoded, as clients send them)."""
    raw = key.encode() if isinstance(key, str) else key
    return crc16(hash_tag(raw)) % SLOTS


def key_for_slot(slot: int, prefix: str = "k") -> str:
    """A short key that hashes to ``slot``: lets tests address one shard on purpose."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is outside 0..{SLOTS - 1}")
    raw = prefix.encode()
    if hash_tag(raw) != raw:  # the prefix holds a hash tag: all its keys hash like the tag
        if key_slot(raw) != slot:
            raise ValueError(
                f"every key with prefix {prefix!r} maps to slot {key_slot(raw)}, not {slot}"
            )
        return f"{prefix}0"
    i = 0
    while True:
        key = f"{prefix}{i}"
        if key_slot(key) == slot:
            return key
        i += 1
