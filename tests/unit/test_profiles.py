"""harness.profiles: a profiles file checked whole (one line per mistake, all of them) and
a user's profiles laid over the shipped ones (``--profiles FILE`` / ``$HARNESS_PROFILES``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import impl as impls
from harness.errors import HarnessError
from harness.profiles import KNOWN_CAPABILITIES, Profile, ProfileError, merge, read

REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

FORK = """
[profiles."my-fork"]
flavor = "redis"
versions = ">=7.0,<7.2"
binaries = ["redis-server"]
capabilities = ["cluster_shards", "manual_failover"]
known_issues = [{ ref = "fork#1", text = "boom" }]
"""


@pytest.fixture(autouse=True)
def shipped_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The repository's profiles, and no user file but the one a test gives."""
    monkeypatch.setattr(impls, "FIXTURES", REPO_FIXTURES)
    monkeypatch.delenv(impls.PROFILES_ENV, raising=False)
    yield
    impls.use_profiles(None, check=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def mistakes(path: Path) -> list[str]:
    with pytest.raises(ProfileError) as exc:
        read(path, "--profiles mine.toml")
    assert str(exc.value).splitlines() == exc.value.mistakes
    for line in exc.value.mistakes:
        assert line.startswith("--profiles mine.toml: "), line
    return exc.value.mistakes


def test_a_good_file(tmp_path: Path) -> None:
    (p,) = read(write(tmp_path, FORK), "x", source="--profiles mine.toml").values()
    assert p == Profile(
        "my-fork",
        "redis",
        ">=7.0,<7.2",
        ("redis-server",),
        frozenset({"cluster_shards", "manual_failover"}),
        (("fork#1", "boom", ""),),
    )
    assert p.source == "--profiles mine.toml"


def test_every_mistake_is_one_line_and_all_are_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[profile.typo]
[profiles."a"]
flavor = "Redis"
versions = ">=7.0,<<7.2"
capabilities = ["cluster_shards", "time_travel"]
colour = "blue"
[profiles."b"]
binaries = "redis-server"
known_issues = [{ ref = "x", text = 3 }]
""",
    )
    found = mistakes(path)
    expected = [
        "unknown table [profile]",
        "profile 'a': unknown field 'colour' (fields: flavor, versions,",
        "profile 'a': flavor 'Redis': give the first word `--version` prints, in lower case",
        "profile 'a': versions '>=7.0,<<7.2': bad version clause '<<7.2'; write e.g. '>=7.0,<7.2'",
        "profile 'a': unknown capability 'time_travel' (known: "
        + ", ".join(sorted(KNOWN_CAPABILITIES))
        + ")",
        "profile 'b': missing field 'flavor'",
        "profile 'b': missing field 'versions'",
        "profile 'b': binaries: give a list of names",
        "profile 'b': known_issues[0]: text must be a string, got 3",
    ]
    assert len(found) == len(expected), found
    for line, text in zip(found, expected, strict=True):
        assert text in line, (line, text)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("[profiles.x\n", "not valid TOML (Expected ']'"),
        ("profiles = 3\n", "`profiles` must be tables"),
        ('[profiles]\nx = "redis"\n', "profile 'x': give a table"),
        ('[profiles.x]\nflavor = "redis"\nversions = 7\n', "versions 7: not a string"),
        ('[profiles.x]\nflavor = "redis"\nversions = ""\n', "bad version clause ''"),
        (
            '[profiles.x]\nflavor = "redis"\nversions = ">=7"\nknown_issues = "oops"\n',
            "known_issues: give a list",
        ),
        (
            '[profiles.x]\nflavor = "redis"\nversions = ">=7"\ncapabilities = [1]\n',
            "capabilities: give a list of names",
        ),
    ],
)
def test_single_mistakes(tmp_path: Path, text: str, expect: str) -> None:
    (line,) = mistakes(write(tmp_path, text))
    assert expect in line


def test_file_missing_or_a_directory(tmp_path: Path) -> None:
    assert mistakes(tmp_path / "nope.toml") == ["--profiles mine.toml: no such file"]
    assert mistakes(tmp_path) == ["--profiles mine.toml: is a directory; give a TOML file"]


def test_merge_replaces_by_name_and_puts_the_users_first() -> None:
    def p(name: str, versions: str) -> Profile:
        return Profile(name, "redis", versions, (), frozenset())

    shipped = {"redis-7.0": p("redis-7.0", ">=7.0,<7.2"), "redis-7.2": p("redis-7.2", ">=7.2")}
    user = {"redis-7.2": p("redis-7.2", ">=7.2,<7.4"), "mine": p("mine", ">=7.0,<7.2")}
    merged = merge(shipped, user)
    assert list(merged) == ["redis-7.2", "mine", "redis-7.0"]
    assert merged["redis-7.2"].versions == ">=7.2,<7.4"


def test_use_profiles_lays_the_file_over_the_shipped_ones(tmp_path: Path) -> None:
    shipped = impls.load_profiles()
    path = write(tmp_path, FORK + '[profiles."redis-6.2"]\nflavor = "redis"\nversions = ">=6.0"\n')
    impls.use_profiles(str(path))
    profiles = impls.load_profiles()
    assert set(profiles) == set(shipped) | {"my-fork"}
    assert profiles["redis-6.2"].versions == ">=6.0"
    assert profiles["redis-6.2"].source == f"--profiles {path}"
    assert profiles["redis-7.0"] == shipped["redis-7.0"] and not profiles["redis-7.0"].source
    impls.use_profiles(None)
    assert impls.load_profiles() == shipped


def test_the_environment_variable_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[profiles.from-env]\nflavor = "redis"\nversions = ">=1.0"\n')
    monkeypatch.setenv(impls.PROFILES_ENV, str(env_file))
    impls.use_profiles(None)
    assert "from-env" in impls.load_profiles()
    assert impls.load_profiles()["from-env"].source == f"HARNESS_PROFILES={env_file}"
    impls.use_profiles(str(write(tmp_path, FORK)))
    assert "from-env" not in impls.load_profiles() and "my-fork" in impls.load_profiles()


def test_use_profiles_checks_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProfileError, match=r"^--profiles /nonexistent\.toml: no such file$"):
        impls.use_profiles("/nonexistent.toml")
    monkeypatch.setenv(impls.PROFILES_ENV, str(tmp_path / "gone.toml"))
    with pytest.raises(HarnessError, match=r"^HARNESS_PROFILES=.*gone\.toml: no such file$"):
        impls.use_profiles(None)


def test_a_named_profile_takes_a_binary_another_profile_also_fits(tmp_path: Path) -> None:
    """``--impl my-fork --impl-binary redis-server``: the binary is checked against the
    profile named, not the first one its version fits."""
    server = tmp_path / "redis-server"
    server.write_text("#!/bin/sh\necho 'Redis server v=7.0.15 sha=0 bits=64'\n")
    server.chmod(0o755)
    impls.use_profiles(str(write(tmp_path, FORK)))
    assert impls.resolve("my-fork", str(server)).name == "my-fork"
    assert impls.resolve("redis-7.0", str(server)).name == "redis-7.0"
    assert impls.resolve(None, str(server)).name == "my-fork"  # the user's come first
