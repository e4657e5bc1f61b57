"""One row of the option table (:mod:`harness.options`): what an option is called in each
layer, what it takes, and its one check, so a bad value gets the same line wherever it
comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Layer = Literal["run", "up", "pytest", "marker", "impls", "acl-setuser", "upgrade"]
Kind = Literal["int", "float", "bool", "text", "server_arg"]


class OptionError(ValueError):
    """A value an option refuses: ``hint`` says what to give, ``value`` is what was given."""

    def __init__(self, hint: str, value: object) -> None:
        super().__init__(hint)
        self.hint = hint
        self.value = value


@dataclass(frozen=True)
class Option:
    """One option: what it is called in each layer, what it takes, and its check."""

    name: str  # attribute / ClusterSpec field / marker keyword
    kind: Kind
    help: str
    layers: frozenset[Layer]
    default: Any = None
    flag_name: str | None = None  # default: --name-with-dashes
    metavar: str | None = None
    range: tuple[float, float] | None = None  # inclusive
    choices: tuple[str, ...] = ()
    unit: str = ""  # said after the range: "use 50..600000 ms"
    repeat: bool = False  # the flag may be given several times; the value is a tuple
    chars: frozenset[str] = frozenset()  # text: the characters allowed (empty: any)
    chars_hint: str = ""  # what to say when another is given

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.name.replace("_", "-")

    @property
    def metavar_text(self) -> str | None:
        return "{" + ",".join(self.choices) + "}" if self.choices else self.metavar

    @property
    def help_text(self) -> str:
        shown = self.default not in (None, (), False)
        return f"{self.help} (default {self.default})" if shown else self.help

    def check(self, value: Any) -> None:
        """The check of this option's values; raises :class:`OptionError`."""
        if self.kind == "server_arg":
            for item in value if isinstance(value, tuple) else [value]:
                if not (
                    isinstance(item, tuple)
                    and len(item) == 2
                    and isinstance(item[0], str)
                    and item[0]
                ):
                    raise OptionError(
                        "give (NAME, VALUE) pairs, e.g. (('maxmemory', '64mb'),)", value
                    )
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise OptionError("give True or False", value)
            return
        if self.kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            raise OptionError(f"give a whole number, e.g. {self._example()}", value)
        if self.kind == "float" and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise OptionError(f"give a number, e.g. {self._example()}", value)
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            lo, hi = (int(x) if x == int(x) else x for x in self.range)
            unit = f" {self.unit}" if self.unit else ""
            raise OptionError(f"use {lo}..{hi}{unit}, got {value}", value)
        if self.choices and value not in self.choices:
            raise OptionError(f"choose one of: {', '.join(self.choices)}", value)
        if self.chars and value is not None and (not value or not set(value) <= self.chars):
            raise OptionError(self.chars_hint, value)

    def parse(self, text: str) -> Any:
        """One command-line value (one of several, for a repeated flag) to a checked value."""
        value: Any = text
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise OptionError(f"give a whole number, e.g. {self._example()}", text) from None
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise OptionError(f"give a number, e.g. {self._example()}", text) from None
        elif self.kind == "server_arg":
            name, _, rest = text.strip().partition(" ")
            if not name or not rest.strip():
                raise OptionError("give 'NAME VALUE', e.g. --server-arg 'maxmemory 100mb'", text)
            return (name, rest.strip())
        elif self.kind == "bool":
            raise TypeError(f"{self.name} is a flag: it takes no value")
        self.check(value)
        return value

    @property
    def switch(self) -> bool:
        """A bool option is a flag without a value on the command line (``--allow-x``)."""
        return self.kind == "bool"

    def to_text(self, value: Any) -> list[str]:
        """``value`` as command-line arguments (how ``run`` passes it on to pytest)."""
        if value is None:
            return []
        if self.switch:
            return [self.flag] if value else []
        items = value if self.repeat else (value,)
        return [a for item in items for a in (self.flag, self._item_text(item))]

    def _item_text(self, item: Any) -> str:
        return " ".join(item) if self.kind == "server_arg" else str(item)

    def _example(self) -> object:
        if self.default is not None:
            return self.default
        return int(self.range[0]) if self.range else 1
