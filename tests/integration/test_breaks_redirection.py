"""A server that breaks a ``CLUSTERDOWN`` rule must be caught, and the rule named.

The broken servers are the real server with one setting changed: a wrapper script given
as ``--impl-binary`` starts it with the setting appended to its command line, where it
wins over the harness's config file (a server applies its command-line options after
the file). The conformance test that says a cluster with unassigned slots refuses every
key (``cluster-require-full-coverage yes``, ``cluster-allow-reads-when-down no``: the
defaults, which the test does not set) runs in a separate pytest process against

- ``cluster-allow-reads-when-down yes``: the owners of the covered slots serve reads
  while the cluster is down;
- ``cluster-require-full-coverage no``: the cluster never turns ``cluster_state:fail``;

and must fail, its error naming the rule. The same test through an unchanged wrapper
passes, so it is the setting that fails it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness.impl import Implementation, available

SUITE = Path(__file__).resolve().parents[2] / "suites" / "conformance"
TEST = (
    "test_redirection_details.py::test_full_coverage_refuses_every_key_while_slots_are_unassigned"
)
RULE = "MUST (cluster-require-full-coverage yes): a slot uncovered stops the cluster"


def _real() -> Implementation | None:
    return available("valkey-8.0") or available("redis-7.0")


pytestmark = pytest.mark.skipif(_real() is None, reason="needs valkey-8.0 or redis-7.0")


def _run(pytester: pytest.Pytester, *setting: str) -> pytest.RunResult:
    """The test against the real server started with ``setting`` on its command line."""
    real = _real()
    assert real is not None
    wrapper = pytester.path / "bin" / Path(real.binary).name  # named as the real one
    wrapper.parent.mkdir()
    extra = "".join(f" --{s}" for s in setting)
    wrapper.write_text(f'#!/bin/sh\nexec "{real.binary}" "$@"{extra}\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return pytester.runpytest_subprocess(
        str(SUITE / TEST),
        "--impl-binary",
        str(wrapper),
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(pytester.path / "out"),
    )


def test_the_rule_holds_on_unchanged_servers(pytester: pytest.Pytester) -> None:
    _run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("setting", "seen"),
    [
        # a read of a covered key is answered with its value instead of CLUSTERDOWN
        ("cluster-allow-reads-when-down yes", "on GET: the value b'cover:"),
        # the nodes never report the down state
        ("cluster-require-full-coverage no", "cluster_state:fail: not reached"),
    ],
)
def test_a_server_breaking_full_coverage_fails_naming_the_rule(
    pytester: pytest.Pytester, setting: str, seen: str
) -> None:
    result = _run(pytester, setting)
    result.assert_outcomes(failed=1)
    # the exception's own lines ("E   ..."), not the test's source listed above them
    errors = [ln for ln in result.outlines if ln.startswith("E ")]
    named = [ln for ln in errors if RULE in ln and seen in ln]
    assert named, "\n".join(errors or result.outlines[-30:])
