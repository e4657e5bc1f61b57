"""Implementation profiles: reading and checking a profiles file, and laying a user's
profiles over the shipped ones.

The shipped file (``fixtures/implementations.toml``, in the wheel as
``harness/fixtures/``) is what the harness knows; a user's file (``--profiles FILE`` or
``$HARNESS_PROFILES``) adds a fork or a vendor build, or replaces a shipped profile of the
same name, without editing the package. A file is checked whole and every mistake is one
line of the :class:`ProfileError`, all at once, so one CI log shows everything to fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.regressions.model import EXPECTS, Expectation

KNOWN_CAPABILITIES = frozenset(
    {
        "cluster_shards",
        "addslotsrange",
        "bind_source_addr",
        "sharded_pubsub",
        "manual_failover",
        "debug_command",
        "replicated_setslot",
        "runtime_announce",
    }
)

#: a profile's fields and whether it must have them
FIELDS = {
    "flavor": True,
    "versions": True,
    "binaries": False,
    "capabilities": False,
    "known_issues": False,
    "regressions": False,
    "divergences": False,
    "cli": False,
}
ISSUE_FIELDS = {"ref": True, "text": True, "log": False}
#: one expectation of [profiles.NAME.regressions] (harness.regressions.model.Expectation)
EXPECTATION_FIELDS = {
    "expect": True,
    "ref": True,
    "measured": False,
    "versions": False,
    "text": False,
    "log": False,
}

Version = tuple[int, int, int]


@dataclass(frozen=True)
class Profile:
    """What the harness knows about one implementation family/version range."""

    name: str
    flavor: str
    versions: str
    binaries: tuple[str, ...]
    capabilities: frozenset[str]
    #: known server bugs: (reference, text in the failure, text in a node log or "")
    known_issues: tuple[tuple[str, str, str], ...] = ()
    #: the cluster tool (``redis-cli``, an absolute path, or ``pkg:relpath`` inside a Python
    #: package) when it is not the server's name with ``-cli`` for ``-server``
    #: (:mod:`harness.clitool`)
    cli: str = ""
    #: what the regression scenarios (suites/regressions) find on these versions
    regressions: tuple[Expectation, ...] = ()
    #: rules the implementation breaks on purpose, as it documents: the suite test
    #: ("test_file.py::test_name") -> the reference; reported, not failed
    divergences: tuple[tuple[str, str], ...] = ()
    #: where a user's profile came from (``--profiles my.toml``); "" when shipped
    source: str = field(default="", compare=False)

    def known_issue(self, failure: str, logs: str = "") -> str | None:
        """The reference of a known server bug this failure shows, if any: its text is
        in the failure and, when the issue names one, its log line in the nodes' logs
        (a hang shows only as "unreachable"; the log tells which bug hung it)."""
        for e in self.regressions:  # a bug with a scenario: named by it
            if e.text and e.text in failure and e.log in logs:
                return f"{e.ref} (regression scenario {e.scenario})"
        for ref, text, log in self.known_issues:
            if text in failure and log in logs:
                return ref
        return None

    def divergence(self, nodeid: str) -> str | None:
        """The documented divergence a failure of ``nodeid`` is (its reference), if any:
        matched on the file's name and the test's, so an installed suite matches too."""
        path, _, name = nodeid.partition("::")
        key = f"{path.rsplit('/', 1)[-1]}::{name.split('[', 1)[0]}"
        return next((ref for test, ref in self.divergences if test == key), None)

    def expectation(self, scenario: str, version: Version) -> Expectation | None:
        """What this profile expects of ``scenario`` on ``version`` (the first entry
        whose range holds it), or None when it says nothing."""
        for e in self.regressions:
            if e.scenario == scenario and (not e.versions or version_in(version, e.versions)):
                return e
        return None

    def matches(self, flavor: str, version: Version) -> bool:
        return flavor == self.flavor and version_in(version, self.versions)


class ProfileError(HarnessError):
    """Mistakes in a profiles file, one line each (the message has one line per mistake)."""

    def __init__(self, mistakes: list[str]) -> None:
        super().__init__("\n".join(mistakes))
        self.mistakes = mistakes


def parse_version(text: str) -> Version:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


_CLAUSE = re.compile(r"\s*(>=|<=|==|<|>)\s*(\d+(?:\.\d+){0,2})\s*")


def parse_range(spec: str) -> list[tuple[str, Version]]:
    """A range like ``">=7.0,<7.2"`` as (operator, version) clauses; ValueError if bad."""
    clauses = []
    for clause in spec.split(","):
        m = _CLAUSE.fullmatch(clause)
        if not m:
            raise ValueError(f"bad version clause {clause!r}")
        clauses.append((m.group(1), parse_version(m.group(2))))
    return clauses


def version_in(version: Version, spec: str) -> bool:
    """Check ``version`` against a spec like ``">=7.0,<7.2"``."""
    for op, ref in parse_range(spec):
        ok = {
            ">=": version >= ref,
            "<=": version <= ref,
            "==": version == ref,
            "<": version < ref,
            ">": version > ref,
        }[op]
        if not ok:
            return False
    return True


def read(path: Path, label: str, source: str = "") -> dict[str, Profile]:
    """The profiles in ``path``, checked; ``label`` starts each mistake's line (the file as
    the user named it), ``source`` marks the profiles as theirs."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError([f"{label}: no such file"]) from None
    except IsADirectoryError:
        raise ProfileError([f"{label}: is a directory; give a TOML file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ProfileError([f"{label}: cannot read it ({why})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([f"{label}: not valid TOML ({exc})"]) from None
    mistakes = [
        f"{label}: unknown table [{key}]; profiles go in [profiles.NAME] tables"
        for key in data
        if key != "profiles"
    ]
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        mistakes.append(f"{label}: `profiles` must be tables: [profiles.NAME]")
        tables = {}
    profiles = {}
    for name, table in tables.items():
        profile = _profile(name, table, f"{label}: profile {name!r}", mistakes)
        if profile is not None:
            profiles[name] = replace(profile, source=source)
    if mistakes:
        raise ProfileError(mistakes)
    return profiles


def merge(shipped: Mapping[str, Profile], user: Mapping[str, Profile]) -> dict[str, Profile]:
    """The user's profiles over the shipped ones: a user profile replaces the shipped one of
    the same name, and the user's come first, so a binary both could match is theirs."""
    return {**user, **{n: p for n, p in shipped.items() if n not in user}}


def _profile(name: str, table: Any, label: str, mistakes: list[str]) -> Profile | None:
    """One profile table, its mistakes appended to ``mistakes`` (None if it has any)."""
    if not isinstance(table, dict):
        mistakes.append(f'{label}: give a table, [profiles."{name}"] with flavor and versions')
        return None
    before = len(mistakes)
    _fields(table, FIELDS, label, mistakes)
    flavor, versions = table.get("flavor"), table.get("versions")
    if "flavor" in table and not (
        isinstance(flavor, str) and re.fullmatch(r"[a-z][a-z0-9_-]*", flavor)
    ):
        mistakes.append(
            f"{label}: flavor {flavor!r}: give the first word `--version` prints, in lower "
            "case (e.g. 'redis' for 'Redis server v=7.0.15')"
        )
    if "versions" in table:
        try:
            if not isinstance(versions, str):
                raise ValueError("not a string")
            parse_range(versions)
        except ValueError as exc:
            mistakes.append(f"{label}: versions {versions!r}: {exc}; write e.g. '>=7.0,<7.2'")
    binaries = _strings(table, "binaries", label, mistakes)
    capabilities = _strings(table, "capabilities", label, mistakes)
    unknown = [c for c in capabilities if c not in KNOWN_CAPABILITIES]
    if unknown:
        mistakes.append(
            f"{label}: unknown capability {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(KNOWN_CAPABILITIES))})"
        )
    cli = table.get("cli", "")
    if "cli" in table and not (isinstance(cli, str) and _CLI_NAME.fullmatch(cli)):
        mistakes.append(
            f'{label}: cli {cli!r}: give the cluster tool\'s file name, e.g. cli = "redis-cli" '
            '(or "package:relpath" for one inside a Python package)'
        )
    issues = table.get("known_issues", [])
    if not (isinstance(issues, list) and all(isinstance(i, dict) for i in issues)):
        mistakes.append(f'{label}: known_issues: give a list of {{ ref = "...", text = "..." }}')
        issues = []
    for i, issue in enumerate(issues):
        _fields(issue, ISSUE_FIELDS, f"{label}: known_issues[{i}]", mistakes, strings=True)
    expectations = _expectations(table.get("regressions", {}), label, mistakes)
    divergences = _divergences(table.get("divergences", {}), label, mistakes)
    if len(mistakes) > before:
        return None
    return Profile(
        name=name,
        flavor=str(flavor),
        versions=str(versions),
        binaries=tuple(binaries),
        capabilities=frozenset(capabilities),
        known_issues=tuple((k["ref"], k["text"], k.get("log", "")) for k in issues),
        cli=str(cli),
        regressions=tuple(expectations),
        divergences=tuple(divergences),
    )


_TEST_KEY = re.compile(r"test_\w+\.py::test_\w+")


def _divergences(table: Any, label: str, mistakes: list[str]) -> list[tuple[str, str]]:
    """``[profiles.NAME.divergences]``: ``"test_file.py::test_name" = "reference"``."""
    if not isinstance(table, dict):
        mistakes.append(f'{label}: divergences: give a table: "test_x.py::test_y" = "reference"')
        return []
    out = []
    for test, ref in table.items():
        if not _TEST_KEY.fullmatch(test):
            mistakes.append(
                f"{label}: divergences: {test!r}: name a suite test as test_file.py::test_name"
            )
        elif not (isinstance(ref, str) and ref):
            mistakes.append(f"{label}: divergences.{test}: give the reference that documents it")
        else:
            out.append((test, ref))
    return out


def _expectations(table: Any, label: str, mistakes: list[str]) -> list[Expectation]:
    """``[profiles.NAME.regressions]``: per scenario one ``{ expect, ref, ... }`` or a list
    of them with ``versions`` ranges (a bug fixed in a patch release of the profile)."""
    hint = '{ expect = "reproduced", ref = "..." }'
    if not isinstance(table, dict):
        mistakes.append(f"{label}: regressions: give a table: scenario = {hint}")
        return []
    out = []
    for scenario, value in table.items():
        entries = value if isinstance(value, list) else [value]
        for i, entry in enumerate(entries):
            where = f"{label}: regressions.{scenario}" + (
                f"[{i}]" if isinstance(value, list) else ""
            )
            if not isinstance(entry, dict):
                mistakes.append(f"{where}: give {hint}")
                continue
            n = len(mistakes)
            _fields(entry, EXPECTATION_FIELDS, where, mistakes, strings=True)
            if "expect" in entry and entry["expect"] not in EXPECTS:
                mistakes.append(f"{where}: expect {entry['expect']!r}: one of {', '.join(EXPECTS)}")
            if isinstance(entry.get("versions"), str):
                try:
                    parse_range(entry["versions"])
                except ValueError as exc:
                    mistakes.append(f"{where}: versions {entry['versions']!r}: {exc}")
            if len(mistakes) == n:
                out.append(Expectation(scenario=scenario, **entry))
    return out


def _fields(
    table: dict[str, Any],
    known: Mapping[str, bool],
    label: str,
    mistakes: list[str],
    *,
    strings: bool = False,
) -> None:
    """Unknown and missing fields (and, with ``strings``, values that are not text)."""
    for key in table:
        if key not in known:
            mistakes.append(f"{label}: unknown field {key!r} (fields: {', '.join(known)})")
        elif strings and not isinstance(table[key], str):
            mistakes.append(f"{label}: {key} must be a string, got {table[key]!r}")
    for key, required in known.items():
        if required and key not in table:
            mistakes.append(f"{label}: missing field {key!r}")


def _strings(table: dict[str, Any], key: str, label: str, mistakes: list[str]) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return value
    mistakes.append(f'{label}: {key}: give a list of names, e.g. {key} = ["{_EXAMPLE[key]}"]')
    return []


_CLI_NAME = re.compile(r"(?:[A-Za-z_][\w.]*:)?/?[\w.+-]+(?:/[\w.+-]+)*")
_EXAMPLE = {"binaries": "redis-server", "capabilities": "cluster_shards"}
