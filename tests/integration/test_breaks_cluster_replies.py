"""A server whose topology views send clients elsewhere must be caught, the rule named.

The broken server is the real one started through a wrapper that adds two real settings:
``cluster-announce-hostname nowhere.invalid`` (a name that resolves nowhere: ``.invalid``
is reserved, RFC 2606) and ``cluster-preferred-endpoint-type hostname``. (A wrapper, not
``--server-arg``: the pytest plugin's ``--server-arg`` does not take a value yet.) ``CLUSTER SLOTS``, ``CLUSTER SHARDS``
(and ``MOVED``) then name every node ``nowhere.invalid:<port>`` while ``CLUSTER NODES``
still gives its address: a client bootstrapping from ``CLUSTER SLOTS`` can reach no node.
Shown: ``test_slots_shards_and_nodes_agree`` fails, its message states the rule and
names the endpoint; the same test passes on the same server without those settings.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness.impl import available

REAL = available("redis-7.0")
pytestmark = pytest.mark.skipif(REAL is None, reason="redis-7.0 is not installed")

SUITE = Path(__file__).resolve().parents[2] / "suites" / "conformance" / "test_cluster_replies.py"
TEST = f"{SUITE}::test_slots_shards_and_nodes_agree"
BROKEN = "--cluster-announce-hostname nowhere.invalid --cluster-preferred-endpoint-type hostname"
RULE = "CLUSTER SLOTS, CLUSTER SHARDS and CLUSTER NODES must describe the same cluster"


def _run(pytester: pytest.Pytester, binary: str) -> pytest.RunResult:
    report = pytester.path / "out"
    return pytester.runpytest_subprocess(
        TEST, "--impl-binary", binary, "-p", "no:cacheprovider", "--report-dir", str(report)
    )


def test_endpoints_that_reach_no_node_fail_naming_the_rule(pytester: pytest.Pytester) -> None:
    assert REAL is not None
    wrapper = pytester.path / "bin" / "redis-server"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{REAL.binary}" "$@" {BROKEN}\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    result = _run(pytester, str(wrapper))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*{RULE}*", "*SLOTS names * at nowhere.invalid:*, NODES at 127.0.0.1:*"]
    )


def test_the_same_server_with_its_defaults_passes(pytester: pytest.Pytester) -> None:
    assert REAL is not None
    _run(pytester, REAL.binary).assert_outcomes(passed=1)
