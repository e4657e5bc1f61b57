"""An image of Debian trixie with redis-server and valkey-server, for servers newer than
the host's (Redis 8.0, Valkey 8.1).

The root filesystem is bootstrapped with ``debootstrap --variant=minbase`` from the apt
mirror configured here, checked against the Debian archive keyring, pruned, tarred and
``docker import``ed; every server in it must answer ``--version`` in a container as it did
in the chroot. The build directory is a :func:`~harness.images.workdir.workdir`: removed
afterwards, and by the next build if this one is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.images.docker import (
    DATA_DIR,
    PACKAGES_LABEL,
    REPOSITORY_PREFIX,
    SUITE_LABEL,
    VERSION_LABEL,
    VERSION_TIMEOUT,
    build_lock,
    docker_client,
    first_line,
    image_labels,
    import_checked,
)
from harness.images.workdir import evacuate, workdir
from harness.impl import run_version

log = logging.getLogger(__name__)

TRIXIE_TAG = f"{REPOSITORY_PREFIX}/trixie:latest"
TRIXIE_PACKAGES = ("redis-server", "valkey-server")
DEBOOTSTRAP_TIMEOUT = 3600.0
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


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
    with contextlib.closing(docker_client()) as client, build_lock(f"trixie:{tag}"):
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
        with workdir() as work:
            root = work / "rootfs"
            _debootstrap(debootstrap, root, mirror, packages)
            evacuate(work)  # debootstrap unmounts what it mounted; make sure
            versions = _installed_versions(root, packages)
            servers: dict[str | None, str] = {
                p: _chroot_version(root, p)
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
            server = next(iter(servers), None)
            if server is not None:
                changes.append(f"CMD {json.dumps([server, '--protected-mode', 'no'])}")
            import_checked(client, tar_path, tag, changes, labels, servers)
        log.info("built %s in %.0fs", tag, time.monotonic() - started)
        return tag


def _has_packages(client: Any, tag: str, packages: Iterable[str]) -> bool:
    labels = image_labels(client, tag)
    if labels is None:
        return False
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
    """First line of ``program --version`` run inside the new root filesystem."""
    out = run_version(Path(program), program, VERSION_TIMEOUT, prefix=["chroot", str(root)])
    line = first_line(out.stdout or out.stderr)
    if out.returncode != 0 or not line:
        raise HarnessError(f"{program} --version fails in the new trixie root filesystem")
    return line


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
