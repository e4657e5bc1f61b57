"""Images of one server binary: the binary, the shared libraries ``ldd`` lists and the
dynamic loader in an otherwise empty root filesystem, ``docker import``ed.

The image runs exactly the binary the local backend would run, so results of the two
backends compare like for like. The server's own cluster tool goes in beside it when the
host has one of the same version (``redis-cli`` from the same package, see
:mod:`harness.clitool.locate`), with its libraries, so the tool runs where the nodes
are. Images carry ``org.redis-cluster-harness.*`` labels (the
sha256 over the binary and its libraries, the executable's name, its ``--version``), so an
unchanged binary reuses its image (:func:`image_for_binary`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.images.docker import (
    BIN_DIR,
    CLI_LABEL,
    DATA_DIR,
    EXECUTABLE_LABEL,
    REPOSITORY_PREFIX,
    SHA_LABEL,
    VERSION_LABEL,
    VERSION_TIMEOUT,
    build_lock,
    docker_client,
    find_image,
    first_line,
    import_checked,
)
from harness.images.workdir import workdir
from harness.impl import parse_version, run_version

log = logging.getLogger(__name__)

SERVICE_UID = 999  # the ``redis`` user in the image; the server itself runs as root


@dataclass(frozen=True)
class PackagedBinary:
    """What goes into a binary's image, worked out on the host without Docker."""

    name: str  # the executable's name in the image: servers behave by argv[0]
    source: Path  # the resolved file whose content is packaged
    libs: tuple[tuple[str, Path], ...]  # (path in the image, file on the host), loader incl.
    interpreter: str | None  # the dynamic loader; None when statically linked
    sha256: str  # over the binary, its tool and their libraries: the image's identity
    version: str  # first line of ``--version``
    #: the cluster tool packed beside the server: (name, file on the host, its --version)
    cli: tuple[str, Path, str] | None = None

    @property
    def default_tag(self) -> str:
        return f"{REPOSITORY_PREFIX}/{_repo_component(self.name)}:{self.sha256[:12]}"

    @property
    def labels(self) -> dict[str, str]:
        labels = {SHA_LABEL: self.sha256, VERSION_LABEL: self.version, EXECUTABLE_LABEL: self.name}
        if self.cli is not None:
            labels[CLI_LABEL] = self.cli[2]
        return labels


def inspect_binary(binary: str, cli: str = "") -> PackagedBinary:
    """Check that ``binary`` can be packaged and work out what the image holds (with the
    server's cluster tool: ``cli`` as a profile names it, else found beside the server).

    Raises one-line :class:`HarnessError`\\ s for a missing file, a wrapper script or other
    non-ELF file, and libraries the loader cannot find, before Docker is involved.
    """
    given = _locate(binary)
    source = given.resolve()
    _check_executable(binary, source)
    interpreter, libs = _shared_libraries(binary, source)
    version = _host_version(binary, given)
    tool = _cluster_tool(given, version, cli)
    digest = hashlib.sha256()
    _hash_file(digest, source)
    if tool is not None:
        _, tool_libs = _shared_libraries(str(tool[1]), tool[1])
        libs = sorted(dict([*libs, *tool_libs]).items())
        digest.update(b"cli\0" + tool[0].encode() + b"\0")
        _hash_file(digest, tool[1])
    for target, host in sorted(libs):
        digest.update(target.encode() + b"\0")
        _hash_file(digest, host)
    return PackagedBinary(
        given.name, source, tuple(libs), interpreter, digest.hexdigest(), version, tool
    )


_SERVER_VERSION = re.compile(r"^([A-Za-z][\w-]*) server v=(\d+\.\d+(?:\.\d+)?)")


def _cluster_tool(given: Path, version: str, spec: str) -> tuple[str, Path, str] | None:
    """(name in the image, host file, --version) of the server's cluster tool, if the host
    has one of the server's version; None otherwise (the image then has no tool)."""
    from harness.clitool.locate import find_host_tool, tool_names

    m = _SERVER_VERSION.match(version)
    if m is None:
        return None
    names = tool_names(str(given), m.group(1).lower())
    if spec:
        names.insert(0, spec.rpartition(":")[2].rpartition("/")[2])
    found, _ = find_host_tool(str(given), names, parse_version(m.group(2)), spec)
    if found is None:
        return None
    return Path(found.path).name, Path(found.path).resolve(), found.version_text


def build_from_binary(binary: str, tag: str | None = None, cli: str = "") -> str:
    """Build an image that runs ``binary`` (e.g. ``/usr/bin/redis-server``) and return its
    tag, by default ``redis-cluster-harness/<name>:<sha12>``.

    The server is installed as ``/usr/local/bin/<name>`` under the name it was given, not
    the name a symlink resolves to: Debian's ``redis-server`` is a link to
    ``redis-check-rdb``, and the program picks its mode from ``argv[0]``.
    """
    pkg = inspect_binary(binary, cli)
    wanted = tag or pkg.default_tag
    with contextlib.closing(docker_client()) as client, build_lock(f"binary:{pkg.sha256}"):
        found = find_image(client, {SHA_LABEL: pkg.sha256, EXECUTABLE_LABEL: pkg.name}, wanted)
        if found == wanted:  # already built from this very binary under this name
            return found
        return _build_binary_image(client, pkg, wanted)


def image_for_binary(binary: str, cli: str = "") -> str:
    """The image for ``binary``: an existing one while the binary, its tool and their
    libraries are unchanged (same sha256 label and executable name), otherwise a new
    build."""
    pkg = inspect_binary(binary, cli)
    with contextlib.closing(docker_client()) as client, build_lock(f"binary:{pkg.sha256}"):
        found = find_image(
            client, {SHA_LABEL: pkg.sha256, EXECUTABLE_LABEL: pkg.name}, pkg.default_tag
        )
        if found is not None:
            return found
        return _build_binary_image(client, pkg, pkg.default_tag)


def _locate(binary: str) -> Path:
    if not binary:
        raise HarnessError(
            "no server binary given; pass the path of a redis-server-like executable"
        )
    if "/" not in binary:
        hit = shutil.which(binary)
        if hit is None:
            raise HarnessError(f"{binary}: not found on PATH; give the path of the server binary")
        return Path(hit).absolute()
    path = Path(binary).absolute()
    if not path.exists():
        raise HarnessError(
            f"{binary}: no such file; give the path of a redis-server-like executable"
        )
    if not path.is_file() or not os.access(path, os.X_OK):
        raise HarnessError(f"{binary}: not an executable file; chmod +x it or give another path")
    return path


def _check_executable(binary: str, path: Path) -> None:
    """Only a real ELF executable can be packaged: a wrapper script needs a shell and
    whatever it calls, which an image of one binary does not have."""
    try:
        with path.open("rb") as f:
            head = f.read(18)  # up to e_type
    except OSError as exc:
        raise HarnessError(f"{binary}: cannot read it as an ELF executable ({exc})") from exc
    if head[:4] != b"\x7fELF" or len(head) < 18 or head[4] not in (1, 2):
        what = "a script" if head[:2] == b"#!" else "not an ELF file"
        raise HarnessError(
            f"{binary}: cannot be packaged into an image ({what}); give the real server "
            "binary, not a wrapper"
        )
    if int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") not in (2, 3):
        # ET_EXEC, ET_DYN; ldd would call an object file "not a dynamic executable"
        raise HarnessError(f"{binary}: an ELF file but not an executable; give the server binary")


_LDD_FOUND = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")
_LDD_DIRECT = re.compile(r"^\s*(/\S+) \(0x[0-9a-f]+\)$")
_LDD_MISSING = re.compile(r"^\s*(\S+) => not found$")
_LDD_STATIC = ("not a dynamic executable", "statically linked")


def _shared_libraries(binary: str, path: Path) -> tuple[str | None, list[tuple[str, Path]]]:
    """The dynamic loader (None if statically linked) and (path in the image, host file)
    of every library ``ldd`` resolves, the loader included.

    In ``ldd``'s output a library is ``name => /path (0x...)`` and the loader is the line
    with an absolute path and no ``=>``. Libraries keep their absolute paths so that the
    loader finds them as on the host. glibc's ``libgcc_s.so.1`` is added when libc is
    there: glibc loads it at run time (``pthread_cancel``, unwinding in crash reports),
    so ``ldd`` cannot list it.
    """
    ldd = shutil.which("ldd")
    if ldd is None:
        raise HarnessError(f"{binary}: cannot list its shared libraries (ldd is not installed)")
    try:
        out = subprocess.run(
            [ldd, str(path)],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{binary}: cannot list its shared libraries ({exc})") from exc
    found: dict[str, Path] = {}
    direct: list[str] = []
    missing: list[str] = []
    for line in out.stdout.splitlines():
        if m := _LDD_MISSING.match(line):
            missing.append(m.group(1))
        elif m := _LDD_FOUND.match(line):
            found.setdefault(m.group(2), Path(m.group(2)).resolve())
        elif m := _LDD_DIRECT.match(line):
            direct.append(m.group(1))
            found.setdefault(m.group(1), Path(m.group(1)).resolve())
    if missing:
        raise HarnessError(
            f"{binary}: shared libraries not found: {', '.join(missing)}; install them or set "
            "LD_LIBRARY_PATH"
        )
    said = (out.stderr + out.stdout).strip()
    if not direct and any(s in said for s in _LDD_STATIC):
        return None, []
    if out.returncode != 0 or not direct:
        detail = said.splitlines()
        raise HarnessError(
            f"{binary}: cannot list its shared libraries ({detail[0].strip() if detail else f'ldd exited {out.returncode}'})"
        )
    # a library named by absolute path also has no "=>"; the loader is ld-*
    loader = next((d for d in direct if Path(d).name.startswith("ld-")), direct[0])
    libc = next((p for p in found if Path(p).name == "libc.so.6"), None)
    if libc is not None:
        gcc_s = Path(libc).parent / "libgcc_s.so.1"
        if str(gcc_s) not in found and gcc_s.exists():
            found[str(gcc_s)] = gcc_s.resolve()
    return loader, sorted(found.items())


def _host_version(binary: str, path: Path) -> str:
    """First line of ``--version``, run under the name the user gave (argv[0] matters)."""
    out = run_version(path, binary, VERSION_TIMEOUT)
    line = first_line(out.stdout or out.stderr)
    if out.returncode != 0 or not line:
        said = f": {line[:160]!r}" if line else ""
        raise HarnessError(
            f"{binary}: `--version` failed (exit {out.returncode}{said}); is it a Redis-compatible "
            "server?"
        )
    return line


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def _repo_component(name: str) -> str:
    """``name`` as a valid Docker repository path component."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "server"


def _binary_rootfs(pkg: PackagedBinary, tar_path: Path) -> None:
    """Write the image's root filesystem: the binary, its libraries, users, /tmp, /data."""
    files: dict[str, tuple[Path | bytes, int]] = {
        f"{BIN_DIR}/{pkg.name}": (pkg.source, 0o755),
        **({f"{BIN_DIR}/{pkg.cli[0]}": (pkg.cli[1], 0o755)} if pkg.cli else {}),
        "/etc/passwd": (
            b"root:x:0:0:root:/root:/sbin/nologin\n"
            b"redis:x:999:999:redis:/data:/sbin/nologin\n"
            b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
            0o644,
        ),
        "/etc/group": (b"root:x:0:\nredis:x:999:\nnogroup:x:65534:\n", 0o644),
        "/etc/nsswitch.conf": (b"passwd: files\ngroup: files\nhosts: files dns\n", 0o644),
    }
    for target, host in pkg.libs:
        files[target] = (host, 0o755)
    dirs: dict[str, tuple[int, int]] = {"/tmp": (0o1777, 0), DATA_DIR: (0o755, SERVICE_UID)}
    for target in files:
        parent = Path(target).parent
        while str(parent) != "/":
            dirs.setdefault(str(parent), (0o755, 0))
            parent = parent.parent
    mtime = int(time.time())
    with tarfile.open(tar_path, "w") as tar:
        for d in sorted(dirs):
            mode, owner = dirs[d]
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode, info.uid, info.gid, info.mtime = mode, owner, owner, mtime
            tar.addfile(info)
        for target in sorted(files):
            content, mode = files[target]
            info = tarfile.TarInfo(target.lstrip("/"))
            info.mode, info.mtime = mode, mtime
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with content.open("rb") as f:
                    tar.addfile(info, f)


def _build_binary_image(client: Any, pkg: PackagedBinary, tag: str) -> str:
    lib_dirs = list(dict.fromkeys(str(Path(t).parent) for t, _ in pkg.libs if t != pkg.interpreter))
    changes = [
        f"ENTRYPOINT {json.dumps([f'{BIN_DIR}/{pkg.name}'])}",
        # a bare `docker run IMAGE` must be reachable on the container network
        'CMD ["--protected-mode", "no"]',
        f"WORKDIR {DATA_DIR}",
    ]
    if lib_dirs:
        # libraries found through LD_LIBRARY_PATH or a $ORIGIN runpath on the host
        changes.append(f"ENV LD_LIBRARY_PATH={':'.join(lib_dirs)}")
    started = time.monotonic()
    with workdir() as tmp:
        tar_path = tmp / "rootfs.tar"
        _binary_rootfs(pkg, tar_path)
        checks: dict[str | None, str] = {None: pkg.version}
        if pkg.cli is not None:  # the tool must run in the image too
            checks[f"{BIN_DIR}/{pkg.cli[0]}"] = pkg.cli[2]
        import_checked(client, tar_path, tag, changes, pkg.labels, checks)
    log.info("built %s from %s in %.1fs", tag, pkg.source, time.monotonic() - started)
    return tag
