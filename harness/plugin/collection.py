"""What collection decides: whether the session uses a cluster at all (then the
implementation is resolved and checked once, up front), and which tests skip because
the implementation or the backend lacks a ``@pytest.mark.requires`` capability."""

from __future__ import annotations

import json

import pytest

from harness import impl as impls
from harness.backends import get_backend
from harness.clitool.locate import tool_unavailable
from harness.errors import HarnessError
from harness.plugin.external import skip_unfit
from harness.plugin.shared import group_of, mark_settings, shares
from harness.plugin.state import STATE
from harness.plugin.workers import name_group
from harness.rules import rule_of

RULE_PROPERTY = "rule"  # a user property: the rule the test states (harness.rules)

HARNESS_FIXTURES = {"cluster", "cluster_factory", "harness_impl"}
BACKEND_CAPABILITIES = frozenset({"network_faults"})  # what backends may offer
#: the server's own cluster tool where the nodes run (harness.clitool); a test whose
#: cluster is formed with it (formation="redis-cli") needs it without saying so
TOOL_CAPABILITIES = frozenset({"cluster_cli"})
CAPABILITIES = impls.KNOWN_CAPABILITIES | BACKEND_CAPABILITIES | TOOL_CAPABILITIES


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    users = [i for i in items if HARNESS_FIXTURES & set(getattr(i, "fixturenames", ()))]
    if not users:
        return
    if state.shared_clusters:
        for item in users:
            if shares(item) and not item.get_closest_marker("xdist_group"):
                group = group_of(mark_settings(item))
                item.add_marker(pytest.mark.xdist_group(group))
                if config.getoption("loadgroup", False):
                    name_group(item, group)
    state.used = True
    for item in users:  # the rule each states travels with its reports (summary.json)
        found = rule_of(getattr(getattr(item, "function", None), "__doc__", None))
        if found is not None:
            item.user_properties.append((RULE_PROPERTY, json.dumps(found.as_dict())))
    try:
        impl = state.implementation()
        if state.backend == "docker":
            from harness.images import preflight

            preflight(impl)
        if state.backend == "external":
            skip_unfit(state, users)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    backend_cls = get_backend(state.backend)
    for item in users:
        if mark_settings(item).get("formation") == "redis-cli":
            reason = tool_unavailable(impl, state.backend)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
        for mark in item.iter_markers("requires"):
            unknown = [c for c in mark.args if c not in CAPABILITIES]
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown capability {unknown[0]!r} in @pytest.mark.requires"
                )
            if "cluster_cli" in mark.args and (reason := tool_unavailable(impl, state.backend)):
                item.add_marker(pytest.mark.skip(reason=reason))
            missing = [
                c
                for c in mark.args
                if c not in BACKEND_CAPABILITIES | TOOL_CAPABILITIES and not impl.has(c)
            ]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"{impl.name} lacks {', '.join(missing)}"))
            for cap in (c for c in mark.args if c in BACKEND_CAPABILITIES):
                reason = backend_cls.unsupported(cap, impl)
                if reason is not None:
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    state = config.stash[STATE]
    return f"redis-cluster-harness: {state.describe()}" if state.used else None
