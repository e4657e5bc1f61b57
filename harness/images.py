"""Container images for the docker backend, built on this machine without any registry.

Nothing can be pulled here, so images are assembled from what the host already has:

- :func:`build_from_binary` packs one server binary, the shared libraries ``ldd`` lists
  and the dynamic loader into an otherwise empty root filesystem and ``docker import``s
  it. The image runs exactly the binary the local backend would run, so results of the
  two backends compare like for like.
- :func:`build_trixie_image` bootstraps a Debian trixie root filesystem from the apt
  mirror configured here, for servers newer than the host's (Redis 8.0, Valkey 8.1).

Every image is checked by running ``--version`` in a container before it is returned; an
image that fails the check is removed, and temporary files go in every case. Images carry
``org.redis-cluster-harness.*`` labels, so an unchanged binary reuses its image
(:func:`image_for_binary`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from harness.errors import HarnessError
from harness.impl import run_version

log = logging.getLogger(__name__)

LABEL_PREFIX = "org.redis-cluster-harness"
SHA_LABEL = f"{LABEL_PREFIX}.binary-sha256"
VERSION_LABEL = f"{LABEL_PREFIX}.version"
EXECUTABLE_LABEL = f"{LABEL_PREFIX}.executable"
PACKAGES_LABEL = f"{LABEL_PREFIX}.packages"
SUITE_LABEL = f"{LABEL_PREFIX}.debian-suite"
CHECK_LABEL = f"{LABEL_PREFIX}.image-check"  # on the containers that verify a new image

REPOSITORY_PREFIX = "redis-cluster-harness"
TRIXIE_TAG = f"{REPOSITORY_PREFIX}/trixie:latest"
TRIXIE_PACKAGES = ("redis-server", "valkey-server")
BIN_DIR = "/usr/local/bin"
DATA_DIR = "/data"
SERVICE_UID = 999  # the ``redis`` user in the image; the server itself runs as root

CONNECT_TIMEOUT = 5.0  # to decide that Docker is not there
API_TIMEOUT = 300.0  # for every later call (imports of large root filesystems)
CHECK_TIMEOUT = 60.0  # for a ``--version`` container
VERSION_TIMEOUT = 10.0  # for ``--version`` on the host
DEBOOTSTRAP_TIMEOUT = 3600.0

APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
WORKDIR_PREFIX = "redis-cluster-harness-build-"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


# -- Docker -----------------------------------------------------------------------------


def docker_client(timeout: float = CONNECT_TIMEOUT) -> docker.DockerClient:
    """A ``docker.DockerClient`` for the daemon ``DOCKER_HOST`` (or the default socket)
    names, checked with a ping that gives up after ``timeout`` seconds, so a missing
    daemon is one clear error instead of a hang or a traceback."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(
            f"Docker is not reachable ({where}: {_reason(exc)}); start the daemon or use --backend local"
        ) from exc
    client.api.timeout = API_TIMEOUT
    return client


def _reason(exc: BaseException) -> str:
    """The innermost OS-level cause of a docker/requests error, in a few words."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in reversed(chain):
        if isinstance(e, TimeoutError) or "timed out" in str(e).lower():
            return "no answer in time"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# -- Binary images ----------------------------------------------------------------------


@dataclass(frozen=True)
class PackagedBinary:
    """What goes into a binary's image, worked out on the host without Docker."""

    name: str  # the executable's name in the image: servers behave by argv[0]
    source: Path  # the resolved file whose content is packaged
    libs: tuple[tuple[str, Path], ...]  # (path in the image, file on the host), loader incl.
    interpreter: str | None  # the dynamic loader; None when statically linked
    sha256: str  # over the binary and its libraries: the image's identity
    version: str  # first line of ``--version``

    @property
    def default_tag(self) -> str:
        return f"{REPOSITORY_PREFIX}/{_repo_component(self.name)}:{self.sha256[:12]}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            SHA_LABEL: self.sha256,
            VERSION_LABEL: self.version,
            EXECUTABLE_LABEL: self.name,
        }


def inspect_binary(binary: str) -> PackagedBinary:
    """Check that ``binary`` can be packaged and work out what the image holds.

    Raises one-line :class:`HarnessError`\\ s for a missing file, a wrapper script or other
    non-ELF file, and libraries the loader cannot find, before Docker is involved.
    """
    given = _locate(binary)
    source = given.resolve()
    interpreter = _elf_interpreter(binary, source)
    libs = _shared_libraries(binary, source, interpreter) if interpreter else []
    version = _host_version(binary, given)
    digest = hashlib.sha256()
    _hash_file(digest, source)
    for target, host in sorted(libs):
        digest.update(target.encode() + b"\0")
        _hash_file(digest, host)
    return PackagedBinary(given.name, source, tuple(libs), interpreter, digest.hexdigest(), version)


def build_from_binary(binary: str, tag: str | None = None) -> str:
    """Build an image that runs ``binary`` (e.g. ``/usr/bin/redis-server``) and return its
    tag, by default ``redis-cluster-harness/<name>:<sha12>``.

    The server is installed as ``/usr/local/bin/<name>`` under the name it was given, not
    the name a symlink resolves to: Debian's ``redis-server`` is a link to
    ``redis-check-rdb``, and the program picks its mode from ``argv[0]``.
    """
    pkg = inspect_binary(binary)
    wanted = tag or pkg.default_tag
    with contextlib.closing(docker_client()) as client, _build_lock(f"binary:{pkg.sha256}"):
        found = _find_image(client, {SHA_LABEL: pkg.sha256, EXECUTABLE_LABEL: pkg.name}, wanted)
        if found == wanted:  # already built from this very binary under this name
            return found
        return _build_binary_image(client, pkg, wanted)


def image_for_binary(binary: str) -> str:
    """The image for ``binary``: an existing one while the binary and its libraries are
    unchanged (same sha256 label and executable name), otherwise a new build."""
    pkg = inspect_binary(binary)
    with contextlib.closing(docker_client()) as client, _build_lock(f"binary:{pkg.sha256}"):
        found = _find_image(
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


def _elf_interpreter(binary: str, path: Path) -> str | None:
    """The ELF program interpreter (dynamic loader) of ``path``; None if statically linked.

    Only a real ELF executable can be packaged: a wrapper script needs a shell and
    whatever it calls, which an image of one binary does not have.
    """
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 52 or head[4] not in (1, 2):
                what = "a script" if head[:2] == b"#!" else "not an ELF file"
                raise HarnessError(
                    f"{binary}: cannot be packaged into an image ({what}); give the real server "
                    "binary, not a wrapper"
                )
            wide = head[4] == 2
            end = "<" if head[5] == 1 else ">"
            (e_type,) = struct.unpack_from(end + "H", head, 16)
            if e_type not in (2, 3):  # ET_EXEC, ET_DYN
                raise HarnessError(
                    f"{binary}: an ELF file but not an executable; give the server binary"
                )
            if wide:
                (phoff,) = struct.unpack_from(end + "Q", head, 0x20)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
            else:
                (phoff,) = struct.unpack_from(end + "I", head, 0x1C)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 0x2A)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                (p_type,) = struct.unpack_from(end + "I", ph, 0)
                if p_type != 3:  # PT_INTERP
                    continue
                if wide:
                    offset, size = (
                        struct.unpack_from(end + "Q", ph, 8)[0],
                        struct.unpack_from(end + "Q", ph, 32)[0],
                    )
                else:
                    offset, size = (
                        struct.unpack_from(end + "I", ph, 4)[0],
                        struct.unpack_from(end + "I", ph, 16)[0],
                    )
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError) as exc:
        raise HarnessError(f"{binary}: cannot read it as an ELF executable ({exc})") from exc
    return None


_LDD_FOUND = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")
_LDD_DIRECT = re.compile(r"^\s*(/\S+) \(0x[0-9a-f]+\)$")
_LDD_MISSING = re.compile(r"^\s*(\S+) => not found$")


def _shared_libraries(binary: str, path: Path, interpreter: str) -> list[tuple[str, Path]]:
    """(path in the image, host file) of every library ``ldd`` resolves, plus the loader.

    Libraries keep their absolute paths so that the loader finds them as on the host.
    glibc's ``libgcc_s.so.1`` is added when libc is there: glibc loads it at run time
    (``pthread_cancel``, unwinding in crash reports), so ``ldd`` cannot list it.
    """
    ldd = shutil.which("ldd")
    cmd = [ldd, str(path)] if ldd else [interpreter, "--list", str(path)]
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{binary}: cannot list its shared libraries ({exc})") from exc
    found: dict[str, Path] = {interpreter: Path(interpreter).resolve()}
    missing: list[str] = []
    for line in out.stdout.splitlines():
        if m := _LDD_MISSING.match(line):
            missing.append(m.group(1))
        elif m := _LDD_FOUND.match(line):
            found.setdefault(m.group(2), Path(m.group(2)).resolve())
        elif m := _LDD_DIRECT.match(line):
            found.setdefault(m.group(1), Path(m.group(1)).resolve())
    if missing:
        raise HarnessError(
            f"{binary}: shared libraries not found: {', '.join(missing)}; install them or set "
            "LD_LIBRARY_PATH"
        )
    if out.returncode != 0 or len(found) == 1:
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise HarnessError(
            f"{binary}: cannot list its shared libraries ({detail[0] if detail else f'ldd exited {out.returncode}'})"
        )
    libc = next((p for p in found if Path(p).name == "libc.so.6"), None)
    if libc is not None:
        gcc_s = Path(libc).parent / "libgcc_s.so.1"
        if str(gcc_s) not in found and gcc_s.exists():
            found[str(gcc_s)] = gcc_s.resolve()
    return sorted(found.items())


def _host_version(binary: str, path: Path) -> str:
    """First line of ``--version``, run under the name the user gave (argv[0] matters)."""
    out = run_version(path, binary, VERSION_TIMEOUT)
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        said = f": {lines[0][:160]!r}" if lines else ""
        raise HarnessError(
            f"{binary}: `--version` failed (exit {out.returncode}{said}); is it a Redis-compatible "
            "server?"
        )
    return lines[0][:200]


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
    with _workdir() as tmp:
        tar_path = tmp / "rootfs.tar"
        _binary_rootfs(pkg, tar_path)
        _import_checked(client, tar_path, tag, changes, pkg.labels, {"--version": pkg.version})
    log.info("built %s from %s in %.1fs", tag, pkg.source, time.monotonic() - started)
    return tag


# -- import, check, lookup --------------------------------------------------------------


def _import_checked(
    client: Any,
    tar_path: Path,
    tag: str,
    changes: list[str],
    labels: Mapping[str, str],
    checks: Mapping[str, str],
) -> None:
    """``docker import`` the tar as ``tag``, then run each command of ``checks`` in it and
    compare the first line of output. A failing image is removed and the tag goes back to
    the image it named before; a replaced older build is removed once nothing names it."""
    previous = _image_id(client, tag)
    image_id = _import(client, tar_path, tag, changes, labels)
    try:
        _check_image(client, image_id, tag, checks)
    except BaseException:
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            client.images.remove(image_id, force=True)
            if previous and previous != image_id:
                repository, version = _split_tag(tag)
                client.images.get(previous).tag(repository, version)
        raise
    if previous and previous != image_id:
        _remove_if_orphaned(client, previous)


def _split_tag(tag: str) -> tuple[str, str]:
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        return tag, "latest"
    return repository, version


def _import(
    client: Any, tar_path: Path, tag: str, changes: list[str], labels: Mapping[str, str]
) -> str:
    """``docker import`` the tar as ``tag``; returns the new image id."""
    repository, version = _split_tag(tag)
    changes = changes + [f"LABEL {k}={_dockerfile_quote(v)}" for k, v in labels.items()]
    try:
        with tar_path.open("rb") as f:
            # a file object, never a path: the SDK takes an unreadable path for a URL
            out = client.api.import_image_from_data(
                f, repository=repository, tag=version, changes=changes
            )
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(f"docker import of {tag} failed: {_reason(exc)}") from exc
    image_id = None
    for line in str(out).splitlines():
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if not isinstance(msg, dict):
                continue
            if "error" in msg:
                raise HarnessError(f"docker import of {tag} failed: {msg['error']}")
            status = str(msg.get("status", ""))
            if status.startswith("sha256:"):
                image_id = status
    if image_id is None:
        raise HarnessError(f"docker import of {tag} failed: no image id in the reply {out!r:.200}")
    return image_id


def _dockerfile_quote(value: str) -> str:
    """A LABEL value as a Dockerfile string: quoted, with ``$`` kept literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _image_id(client: Any, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(f"cannot inspect image {ref}: {_reason(exc)}") from exc


def _remove_if_orphaned(client: Any, image_id: str) -> None:
    """Drop an older build the tag no longer names, so rebuilds do not pile up."""
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        image = client.images.get(image_id)
        labels = image.labels or {}
        if not image.tags and any(k.startswith(LABEL_PREFIX) for k in labels):
            client.images.remove(image_id)


def _check_image(client: Any, image_id: str, tag: str, checks: Mapping[str, str]) -> None:
    """Run each command (arguments to the entrypoint, if any) and compare the first line
    of its output with the expected one."""
    for command, want in checks.items():
        code, output = _run_once(client, image_id, command.split())
        first = output.strip().splitlines()[0].strip() if output.strip() else "nothing"
        if code != 0 or first != want:
            raise HarnessError(
                f"image {tag} does not work: `{command}` exited {code} and printed {first[:160]!r}"
                f" (expected {want[:160]!r})"
            )


def _run_once(
    client: Any, image: str, command: list[str], entrypoint: list[str] | None = None
) -> tuple[int, str]:
    """Run ``command`` in a throwaway container; (exit code, stdout+stderr)."""
    container = None
    extra = {"entrypoint": entrypoint} if entrypoint is not None else {}
    try:
        container = client.containers.create(
            image, command=command, labels={CHECK_LABEL: "1"}, network_disabled=True, **extra
        )
        container.start()
        result = container.wait(timeout=CHECK_TIMEOUT)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(result.get("StatusCode", -1)), output
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(f"cannot run {' '.join(command)} in {image}: {_reason(exc)}") from exc
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                container.remove(force=True)


def _find_image(client: Any, labels: Mapping[str, str], preferred_tag: str) -> str | None:
    """A reference to an image with all ``labels``: ``preferred_tag`` if it is one of its
    tags, else its first tag, else its id."""
    try:
        images = client.images.list(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(f"cannot list images: {_reason(exc)}") from exc
    for image in images:
        if preferred_tag in image.tags:
            return preferred_tag
    for image in images:
        if image.tags:
            return str(image.tags[0])
    return str(images[0].id) if images else None


@contextlib.contextmanager
def _build_lock(key: str) -> Iterator[None]:
    """Serialise builds of the same image by parallel harness processes."""
    # Not under HARNESS_STATE_DIR: runs with different state dirs share the daemon.
    d = Path(f"/tmp/redis-cluster-harness-{os.getuid()}") / "images"
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    fd = os.open(d / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- Debian trixie ----------------------------------------------------------------------


def build_trixie_image(
    packages: tuple[str, ...] = TRIXIE_PACKAGES,
    tag: str = TRIXIE_TAG,
    *,
    rebuild: bool = False,
) -> str:
    """An image of Debian trixie with ``packages`` installed, for servers the host's
    Debian does not ship. Returns ``tag``.

    An existing image under ``tag`` that has the packages is reused unless ``rebuild``.
    Otherwise the root filesystem is made with ``debootstrap --variant=minbase`` from the
    apt mirror configured here (checked against the Debian archive keyring) and imported;
    this needs root and takes minutes. The ``org.redis-cluster-harness.packages`` label
    records the installed versions.
    """
    bad = [p for p in packages if not _PACKAGE_RE.fullmatch(p)]
    if bad or not packages:
        raise HarnessError(f"not Debian package names: {', '.join(bad) or 'none given'}")
    with contextlib.closing(docker_client()) as client, _build_lock(f"trixie:{tag}"):
        if not rebuild and _has_packages(client, tag, packages):
            return tag
        if os.geteuid() != 0:
            raise HarnessError(
                "building the trixie image needs root (debootstrap, chroot); run as root or use "
                "an image built from a binary"
            )
        debootstrap = _ensure_debootstrap()
        mirror = debian_mirror()
        started = time.monotonic()
        with _workdir() as work:
            root = work / "rootfs"
            _debootstrap(debootstrap, root, mirror, packages)
            _evacuate(work)  # debootstrap unmounts what it mounted; make sure
            versions = _installed_versions(root, packages)
            servers = {
                f"{p} --version": _chroot_version(root, p)
                for p in packages
                if (root / "usr/bin" / p).exists() and p.endswith("-server")
            }
            labels = {
                SUITE_LABEL: "trixie",
                PACKAGES_LABEL: ",".join(f"{p}={v}" for p, v in versions.items()),
                VERSION_LABEL: "; ".join(servers.values()),
            }
            _prune_rootfs(root)
            tar_path = work / "rootfs.tar"
            _tar_tree(root, tar_path)
            changes = [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"WORKDIR {DATA_DIR}",
            ]
            server = next((c.split()[0] for c in servers), None)
            if server is not None:
                changes.append(f"CMD {json.dumps([server, '--protected-mode', 'no'])}")
            _import_checked(client, tar_path, tag, changes, labels, servers)
        log.info("built %s in %.0fs", tag, time.monotonic() - started)
        return tag


def _has_packages(client: Any, tag: str, packages: Iterable[str]) -> bool:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise HarnessError(f"cannot inspect image {tag}: {_reason(exc)}") from exc
    labels = image.labels or {}
    have = {entry.partition("=")[0] for entry in labels.get(PACKAGES_LABEL, "").split(",")}
    return labels.get(SUITE_LABEL) == "trixie" and set(packages) <= have


def debian_mirror(sources: Path = APT_SOURCES) -> str:
    """The Debian archive URI apt uses here (deb822 ``.sources``), so debootstrap goes
    through the same mirror and nowhere else."""
    try:
        text = sources.read_text()
    except OSError as exc:
        raise HarnessError(
            f"cannot read the apt sources {sources} ({exc.strerror}); configure a Debian mirror"
        ) from exc
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        uris = fields.get("uris", "").split()
        if "deb" in fields.get("types", "").split() and uris and any("-" not in s for s in suites):
            return uris[0]
    raise HarnessError(f"no Debian archive (Types: deb, a release suite) in {sources}")


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    for attempt in range(2):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            return
        if attempt == 0:  # stale package lists: refresh once
            subprocess.run(
                ["apt-get", "update"], capture_output=True, env=env, stdin=subprocess.DEVNULL
            )
    lines = (out.stderr or out.stdout).strip().splitlines()
    raise HarnessError(
        f"apt-get install {' '.join(packages)} failed: {lines[-1] if lines else out.returncode}"
    )


def _ensure_debootstrap() -> str:
    """debootstrap and the Debian archive keyring, installed with apt-get if missing."""
    if not DEBIAN_KEYRING.exists():
        _apt_install("debian-archive-keyring")
    found = shutil.which("debootstrap")
    if found is None:
        _apt_install("debootstrap")
        found = shutil.which("debootstrap")
    if found is None:
        raise HarnessError("debootstrap is not installed and apt-get did not provide it")
    return found


def _debootstrap(debootstrap: str, root: Path, mirror: str, packages: tuple[str, ...]) -> None:
    cmd = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(packages)}",
        f"--keyring={DEBIAN_KEYRING}",
        "trixie",
        str(root),
        mirror,
    ]
    script = Path("/usr/share/debootstrap/scripts")
    if not (script / "trixie").exists() and (script / "sid").exists():
        cmd.append(str(script / "sid"))  # an older debootstrap that does not know trixie yet
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=DEBOOTSTRAP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(
            f"debootstrap trixie did not finish in {DEBOOTSTRAP_TIMEOUT:g}s (mirror {mirror})"
        ) from exc
    finally:
        if proc.poll() is None:  # timeout or interrupt: end what we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "W: Failure"))]
        last = (errors or lines or [f"exit {proc.returncode}"])[-1]
        raise HarnessError(f"debootstrap trixie from {mirror} failed: {last.strip()}")


def _installed_versions(root: Path, packages: Iterable[str]) -> dict[str, str]:
    out = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={root / 'var/lib/dpkg'}",
            "-W",
            "-f",
            "${Package}=${Version}\n",
            *packages,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    versions = dict(
        line.split("=", 1) for line in out.stdout.splitlines() if "=" in line and line.strip()
    )
    missing = [p for p in packages if not versions.get(p)]
    if out.returncode != 0 or missing:
        raise HarnessError(f"debootstrap did not install {', '.join(missing) or 'the packages'}")
    return versions


def _chroot_version(root: Path, program: str) -> str:
    out = subprocess.run(
        ["chroot", str(root), program, "--version"],
        capture_output=True,
        text=True,
        timeout=VERSION_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        raise HarnessError(f"{program} --version fails in the new trixie root filesystem")
    return lines[0][:200]


def _prune_rootfs(root: Path) -> None:
    """Drop what an image does not need (downloaded .debs, package lists) or must not keep
    (the host's resolv.conf and hostname, which debootstrap copies; Docker provides its
    own), and add /data."""
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/lib/apt/lists/*",
        "var/log/*.log",
        "etc/resolv.conf",
        "etc/hostname",
    ):
        for p in root.glob(pattern):
            if p.is_symlink() or p.is_file():
                p.unlink()
    (root / DATA_DIR.lstrip("/")).mkdir(mode=0o755, exist_ok=True)


def _tar_tree(root: Path, tar_path: Path) -> None:
    """Tar ``root`` with numeric owners; /proc, /sys and /dev stay empty (Docker provides
    them) and nothing on another file system is entered."""
    root_dev = root.stat().st_dev
    skip = ("./proc/", "./sys/", "./dev/")

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if any(info.name.startswith(s) for s in skip):
            return None
        info.uname = info.gname = ""
        return info

    with tarfile.open(tar_path, "w") as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            rel = "." if here == root else "./" + str(here.relative_to(root))
            tar.add(here, arcname=rel, recursive=False, filter=keep)
            links = [d for d in dirnames if (here / d).is_symlink()]  # /lib -> usr/lib
            dirnames[:] = [
                d for d in dirnames if d not in links and (here / d).lstat().st_dev == root_dev
            ]
            for name in links + filenames:
                tar.add(here / name, arcname=f"{rel}/{name}", recursive=False, filter=keep)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _processes_using(work: Path) -> list[int]:
    """Processes inside ``work``: with their root (a daemon a maintainer script started in
    the chroot) or working directory there, or naming it on their command line (a
    debootstrap whose harness process was killed)."""
    prefix = str(work.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            places = [os.readlink(entry / "root"), os.readlink(entry / "cwd")]
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(p == prefix or p.startswith(prefix + "/") for p in places) or any(
            arg.startswith(prefix.encode()) for arg in cmdline
        ):
            pids.append(int(entry.name))
    return pids


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A temporary build directory, always removed. One that a killed build left behind
    (its ``owner`` process is gone) is removed by the next build."""
    _sweep_workdirs()
    work = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        (work / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}")
        yield work
    finally:
        _remove_workdir(work)


def _sweep_workdirs() -> None:
    for work in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        gone = False
        try:
            pid, _, started = (work / "owner").read_text().partition(" ")
            gone = _start_time(int(pid)) != started.strip()
        except (OSError, ValueError):  # no owner yet: a build starting right now, or debris
            with contextlib.suppress(OSError):
                gone = time.time() - work.stat().st_mtime > 60
        if gone:
            with contextlib.suppress(HarnessError, OSError):
                _remove_workdir(work)


def _remove_workdir(work: Path) -> None:
    """Delete a build directory, but only once no process and no mount is left in it:
    removing a tree with /dev still bind-mounted (debootstrap does that in containers)
    would delete the host's device nodes."""
    if work.exists():
        _evacuate(work)
        shutil.rmtree(work)


def _evacuate(work: Path) -> None:
    """Kill the processes in ``work`` and unmount what is mounted under it."""
    for _ in range(50):  # again while a dying parent may still have forked a child
        pids = _processes_using(work)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for point in sorted(_mounts_under(work), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_under(work)
    if left:
        raise HarnessError(f"cannot unmount {left[0]}; unmount it and remove {work} by hand")
