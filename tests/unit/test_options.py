"""The option table: one check per option, the same words in every layer."""

from __future__ import annotations

from dataclasses import fields

import pytest

from harness import options
from harness.cli import build_parser
from harness.errors import UsageError
from harness.spec import ClusterSpec


def test_cluster_spec_fields_are_the_marker_options() -> None:
    assert {f.name for f in fields(ClusterSpec)} == options.MARKER_FIELDS
    spec = ClusterSpec()
    for name in options.MARKER_FIELDS:
        assert getattr(spec, name) == options.OPTION[name].default


def test_one_check_spelled_per_layer() -> None:
    with pytest.raises(UsageError, match=r"^--node-timeout 10: use 50\.\.600000 ms, got 10$"):
        options.from_text("pytest", {"node_timeout_ms": "10"})
    with pytest.raises(UsageError, match=r"^node_timeout_ms=10: use 50\.\.600000 ms, got 10$"):
        ClusterSpec(node_timeout_ms=10)
    with pytest.raises(UsageError, match=r"^--masters 'x': give a whole number, e.g. 3$"):
        options.from_text("up", {"masters": "x"})
    with pytest.raises(UsageError, match=r"^persistence='disk': choose one of: none, rdb, aof$"):
        ClusterSpec(persistence="disk")  # type: ignore[arg-type]


def test_defaults_and_repeated_flags() -> None:
    values = options.from_text("up", {"server_args": ["maxmemory 64mb", "appendfsync  always"]})
    assert values["masters"] == 3 and values["node_timeout_ms"] == 2000
    assert values["server_args"] == (("maxmemory", "64mb"), ("appendfsync", "always"))
    opt = options.OPTION["server_args"]
    assert opt.to_text(values["server_args"]) == [
        "--server-arg",
        "maxmemory 64mb",
        "--server-arg",
        "appendfsync always",
    ]


@pytest.mark.parametrize("layer", ["run", "up", "impls", "acl-setuser"])
def test_cli_flags_are_the_table(layer: options.Layer) -> None:
    sub = build_parser()._subparsers._group_actions[0].choices[layer]  # type: ignore[union-attr]
    flags = {s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")}
    assert flags == {o.flag for o in options.for_layer(layer)}
