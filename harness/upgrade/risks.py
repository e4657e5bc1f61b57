"""TEMPORARY placeholder until the risks module lands (not committed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Risk:
    name: str
    severity: Literal["warning", "unsafe"]
    node: str
    evidence: str
    advice: str
    step: int | None = None

    def describe(self) -> str:
        return f"[{self.severity}] {self.name} on {self.node}: {self.evidence} -> {self.advice}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def classify(node: str, log_tail: str, *, role: str = "", error: str = "") -> list[Risk]:
    out = []
    for line in log_tail.splitlines():
        if "Can't handle RDB format version" in line:
            out.append(
                Risk("rdb-version-refused", "warning", node, line.strip(), "upgrade it next")
            )
            break
    return out


def can_replicate(
    primary: tuple[str, tuple[int, ...]], replica: tuple[str, tuple[int, ...]]
) -> bool | None:
    return None
