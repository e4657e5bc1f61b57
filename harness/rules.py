"""The rule a suite test states, read from its docstring: the level (``MUST``,
``SHOULD``, ``MUST NOT``, ...), the rule's first sentence, and where it is written (the
docstring's last paragraph). Suites are written as a specification, so the rule is the
docstring's own first words, not a second copy in a marker; reports show it next to the
test, and a failure reads as "<implementation>: <rule> (<failure>)".

Pure: a docstring in, a :class:`Rule` (or None for a test that states none) out.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass
from typing import Any

#: the levels of RFC 2119 the suites use, longest first so "MUST NOT" is not read as "MUST"
LEVELS = ("MUST NOT", "SHOULD NOT", "MUST", "SHOULD", "MAY")
_LEAD = re.compile(r"^(" + "|".join(LEVELS) + r")\b:?\s*")
_SENTENCE = re.compile(r"(.+?[.;])(?:\s|$)", re.S)
MAX_TEXT = 240


@dataclass(frozen=True)
class Rule:
    level: str  # one of LEVELS
    text: str  # the rule's first sentence, without the level
    source: str  # where it is written (the docstring's last paragraph), "" if not said

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Rule | None:
        if not isinstance(data, dict):
            return None
        level, text, source = (str(data.get(k, "")) for k in ("level", "text", "source"))
        return cls(level, text, source) if level and text else None

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


def rule_of(doc: str | None) -> Rule | None:
    """The rule ``doc`` states, or None when it does not start with a level."""
    if not doc:
        return None
    text = inspect.cleandoc(doc)
    m = _LEAD.match(text)
    if m is None:
        return None
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    first = paragraphs[0][m.end() :]
    sentence = _SENTENCE.match(first)
    body = (sentence.group(1) if sentence else first).strip()
    if len(body) > MAX_TEXT:
        body = body[: MAX_TEXT - 3].rstrip() + "..."
    source = paragraphs[-1] if len(paragraphs) > 1 else ""
    return Rule(m.group(1), body, source)
