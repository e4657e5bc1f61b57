"""The transaction and script rules must catch a server that breaks them, and name the rule.

The broken server is the real one started through a wrapper (``--impl-binary``) that
adds ``--rename-command EVALSHA ""``: ``EVALSHA`` no longer exists, so a script a client
loaded with ``SCRIPT LOAD`` cannot be run by its SHA1 on the node that holds it, and
declared keys are no longer checked before ``EVALSHA`` (it is refused as unknown first).
Run as a user would (``python -m harness run``), the two conformance tests that use it
must fail, each naming its rule; the same two tests pass on the real binary.
(``--server-arg 'rename-command EVALSHA ""'`` would say the same, but the pytest plugin
reads that repeatable option as one string and stops at start-up.)
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sandbox import Sandbox, outcome

from harness.impl import Implementation, available

TIMEOUT = 120  # one run: one shared cluster, two tests, about 10 s
TESTS = "script_cache_is_per_node or declared_script_keys_must_hash_to_one_served_slot"
RULES = {
    "test_script_cache_is_per_node": (
        "scripts are per node: a script loaded on a master must run there by its SHA1"
    ),
    "test_declared_script_keys_must_hash_to_one_served_slot": (
        "EVALSHA's declared keys are checked like a command's"
    ),
}


@pytest.fixture
def real() -> Implementation:
    impl = available("redis-7.0") or available("valkey-8.0")
    if impl is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    return impl


@pytest.fixture
def without_evalsha(tmp_path: Path, real: Implementation) -> str:
    wrapper = tmp_path / "bin" / "redis-server"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{real.binary}" "$@" --rename-command EVALSHA ""\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def _run(box: Sandbox, report: str, binary: str) -> tuple[int, dict[str, dict]]:  # type: ignore[type-arg]
    argv = ["-m", "harness", "run", "--impl-binary", binary, "--report-dir", report]
    res = box.run([*argv, "--suite", "conformance", "--", "-k", TESTS], timeout=TIMEOUT)
    assert "Traceback" not in res.stderr, outcome(res)
    tests = json.loads((box.dir / report / "summary.json").read_text())["tests"]
    return res.returncode, {t["nodeid"].split("::")[-1]: t for t in tests}


def test_a_server_without_evalsha_fails_the_script_rules_by_name(
    sandbox: Sandbox, real: Implementation, without_evalsha: str
) -> None:
    code, tests = _run(sandbox, "broken", without_evalsha)
    assert code == 1, tests
    assert sorted(tests) == sorted(RULES), tests
    for name, rule in RULES.items():
        got = tests[name]
        assert got["outcome"] == "failed", got
        assert rule in got["message"], got["message"]
        assert "unknown command" in got["message"], got["message"]  # the broken part, shown

    code, tests = _run(sandbox, "sound", real.binary)
    assert code == 0, tests
    assert {n: t["outcome"] for n, t in tests.items()} == dict.fromkeys(RULES, "passed")
    sandbox.assert_nothing_left()
