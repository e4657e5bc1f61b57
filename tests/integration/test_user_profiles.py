"""A user's own profiles (``--profiles FILE`` / ``$HARNESS_PROFILES``) through the CLI and
the plugin: listed by ``impls``, selected by ``run --impl``, and every mistake in the file
one line, all at once, with a non-zero exit and nothing left behind."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sandbox import PYTEST, USAGE_ERROR, Sandbox, lines, outcome

from harness import impl as impls

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server not on PATH")
TIMEOUT = 300


def fork_profile(box: Sandbox) -> Path:
    """A profile "my-fork" for the installed redis-server's minor version."""
    assert REDIS is not None
    flavor, (major, minor, _), _ = impls.identify(REDIS)
    path = box.dir / "my-profiles.toml"
    path.write_text(
        '[profiles."my-fork"]\n'
        f'flavor = "{flavor}"\n'
        f'versions = ">={major}.{minor},<{major}.{minor + 1}"\n'
        'binaries = ["redis-server"]\n'
        'capabilities = ["cluster_shards", "addslotsrange", "manual_failover"]\n'
    )
    return path


BAD = """\
[profiles."my-fork"]
flavor = "redis"
versions = "7.0"
capabilities = ["cluster_shards", "time_travel"]
[profiles."other"]
flavour = "redis"
"""
BAD_LINES = [
    "versions '7.0': bad version clause '7.0'",
    "unknown capability 'time_travel' (known: addslotsrange,",
    "profile 'other': unknown field 'flavour'",
    "profile 'other': missing field 'flavor'",
    "profile 'other': missing field 'versions'",
]


def harness(
    box: Sandbox, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return box.run(["-m", "harness", *args], timeout=TIMEOUT, env=env)


def test_impls_lists_the_users_profile(sandbox: Sandbox) -> None:
    path = fork_profile(sandbox)
    res = harness(sandbox, "impls", "--profiles", path.name)
    assert res.returncode == 0, outcome(res)
    (mine,) = [ln for ln in lines(res.stdout) if ln.startswith("my-fork ")]
    assert f"({REDIS}, profile my-fork)" in mine and mine.endswith(f"[--profiles {path.name}]")
    assert any(ln.startswith("redis-7.0 ") for ln in lines(res.stdout)), outcome(res)


def test_run_selects_the_users_profile(sandbox: Sandbox) -> None:
    path = fork_profile(sandbox)
    report = sandbox.dir / "rep"
    res = harness(
        sandbox,
        *("run", "--profiles", str(path), "--impl", "my-fork", "--impl-binary", str(REDIS)),
        *("--suite", "conformance", "--report-dir", str(report), "--", "-k", "keyslot_matches"),
    )
    assert res.returncode == 0, outcome(res)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["implementation"]["name"] == "my-fork"
    assert summary["totals"] == {"passed": 1}
    sandbox.assert_nothing_left()


def test_pytest_takes_the_profiles_from_the_environment(sandbox: Sandbox) -> None:
    path = fork_profile(sandbox)
    (sandbox.dir / "test_mine.py").write_text(
        "def test_impl(harness_impl):\n    assert harness_impl.name == 'my-fork'\n"
    )
    env = {**sandbox.env, "HARNESS_PROFILES": str(path)}
    res = sandbox.run([*PYTEST, "--impl", "my-fork", "test_mine.py"], timeout=TIMEOUT, env=env)
    assert res.returncode == 0, outcome(res)


def test_every_mistake_is_one_cli_line(sandbox: Sandbox) -> None:
    (sandbox.dir / "bad.toml").write_text(BAD)
    res = harness(sandbox, "run", "--profiles", "bad.toml", "--suite", "conformance")
    assert res.returncode == 2, outcome(res)
    assert res.stdout == "" and "Traceback" not in res.stderr, outcome(res)
    err = lines(res.stderr)
    assert len(err) == len(BAD_LINES), outcome(res)
    for line, text in zip(err, BAD_LINES, strict=True):
        assert line.startswith("harness: error: --profiles bad.toml: profile "), line
        assert text in line, (line, text)
    sandbox.assert_nothing_left()


@pytest.mark.parametrize(
    ("args", "env", "expect"),
    [
        (["--profiles", "missing.toml"], {}, "--profiles missing.toml: no such file"),
        ([], {"HARNESS_PROFILES": "missing.toml"}, "HARNESS_PROFILES=missing.toml: no such file"),
    ],
    ids=["flag", "environment"],
)
def test_a_missing_file_is_one_line(
    sandbox: Sandbox, args: list[str], env: dict[str, str], expect: str
) -> None:
    res = harness(sandbox, "impls", *args, env={**sandbox.env, **env})
    assert res.returncode == 2 and res.stdout == "", outcome(res)
    assert lines(res.stderr) == [f"harness: error: {expect}"], outcome(res)


def test_pytest_lists_every_mistake(sandbox: Sandbox) -> None:
    (sandbox.dir / "bad.toml").write_text(BAD)
    (sandbox.dir / "test_x.py").write_text("def test_x(cluster):\n    pass\n")
    res = sandbox.run([*PYTEST, "--profiles", "bad.toml", "test_x.py"], timeout=TIMEOUT)
    assert res.returncode == USAGE_ERROR and "Traceback" not in res.stderr, outcome(res)
    err = lines(res.stderr)
    assert len(err) == len(BAD_LINES), outcome(res)
    for line, text in zip(err, BAD_LINES, strict=True):
        assert line.startswith("ERROR: --profiles bad.toml: profile ") and text in line, line
    sandbox.assert_nothing_left()
