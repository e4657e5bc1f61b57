"""Which tests run on an external cluster (``--backend external``), and why the others
skip: the cluster is someone else's, so a test that changes it (``destructive``) needs
``--allow-destructive``, and a test that needs a cluster the harness would have shaped
or configured for it needs a cluster that already is so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from harness.backends.external import Discovery, check_options, discover
from harness.options import OPTION
from harness.plugin.state import HarnessState

#: marker settings the harness could only give a cluster it starts
_CONFIGURED = ("persistence", "server_args", "proxied", "network_faults", "formation")


def destructive_reason(item: pytest.Item, allow: bool) -> str | None:
    """Why a ``destructive`` test does not run, or None."""
    mark = item.get_closest_marker("destructive")
    if mark is None or allow:
        return None
    what = f" ({mark.args[0]})" if mark.args else ""
    return f"external cluster: destructive{what}; pass --allow-destructive to run it"


def keyspace_reason(item: pytest.Item) -> str | None:
    """Why a ``whole_keyspace`` test never runs on an external cluster, or None: it
    counts keys it did not write, so only a cluster holding nothing else will do."""
    mark = item.get_closest_marker("whole_keyspace")
    if mark is None:
        return None
    what = mark.args[0] if mark.args else "counts every key"
    return (
        f"external cluster: the test {what}, so it needs a cluster holding only its own "
        "keys (one the harness starts)"
    )


def mismatch(settings: Mapping[str, Any], found: Discovery, any_shape: bool) -> str | None:
    """Why a cluster with these marker settings is not the external one, or None. The
    node timeout is not compared: bounds are derived from the cluster's real one."""
    for key in _CONFIGURED:
        value = settings.get(key)
        if value not in (None, OPTION[key].default, (), {}):
            return (
                f"external cluster: the harness did not start it, so it cannot set {key}={value!r}"
            )
    if any_shape:
        return None
    masters, replicas = found.shape()
    want = {k: settings[k] for k in ("masters", "replicas") if k in settings}
    have = {"masters": masters, "replicas": replicas}
    if any(have[k] != v for k, v in want.items()):
        asked = ", ".join(f"{k}={v}" for k, v in want.items())
        each = "at least " if found.uneven() else ""
        return (
            f"external cluster: the test needs {asked}; the cluster has {masters} master(s) "
            f"with {each}{replicas} replica(s) each"
        )
    return None


def cluster_settings(item: pytest.Item) -> dict[str, Any]:
    """The ``@pytest.mark.cluster`` keywords of ``item``, the closest mark winning."""
    settings: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("cluster"))):
        settings.update(mark.kwargs)
    return settings


def skip_unfit(state: HarnessState, items: list[pytest.Item]) -> None:
    """Mark the tests that do not run on the external cluster as skipped, with why."""
    found = discover(check_options(state.backend, state.nodes), state.access)
    for item in items:
        reason = (
            keyspace_reason(item)
            or destructive_reason(item, state.allow_destructive)
            or mismatch(
                cluster_settings(item), found, item.get_closest_marker("any_shape") is not None
            )
        )
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
