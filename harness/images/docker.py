"""The Docker side of building images: the client and its errors, ``docker import`` of a
root filesystem tar, the ``--version`` check of a new image, and lookups by label.

Both builders (:mod:`harness.images.binary`, :mod:`harness.images.trixie`) end in
:func:`import_checked`; every ``--version`` run in a container goes through
:func:`image_version`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from harness.errors import HarnessError

LABEL_PREFIX = "org.redis-cluster-harness"
SHA_LABEL = f"{LABEL_PREFIX}.binary-sha256"
VERSION_LABEL = f"{LABEL_PREFIX}.version"
EXECUTABLE_LABEL = f"{LABEL_PREFIX}.executable"
CLI_LABEL = f"{LABEL_PREFIX}.cli"  # the cluster tool's --version, when the image has one
PACKAGES_LABEL = f"{LABEL_PREFIX}.packages"
SUITE_LABEL = f"{LABEL_PREFIX}.debian-suite"
CHECK_LABEL = f"{LABEL_PREFIX}.image-check"  # on the containers that verify a new image

REPOSITORY_PREFIX = "redis-cluster-harness"
DATA_DIR = "/data"
BIN_DIR = "/usr/local/bin"  # where an image built from a binary has it (and its tool)

CONNECT_TIMEOUT = 5.0  # to decide that Docker is not there
API_TIMEOUT = 300.0  # for every later call (imports of large root filesystems)
CHECK_TIMEOUT = 60.0  # for a ``--version`` container
VERSION_TIMEOUT = 10.0  # for ``--version`` on the host

DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def docker_client(timeout: float = CONNECT_TIMEOUT) -> docker.DockerClient:
    """A ``docker.DockerClient`` for the daemon ``DOCKER_HOST`` (or the default socket)
    names, checked with a ping that gives up after ``timeout`` seconds, so a missing
    daemon is one clear error instead of a hang or a traceback."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DOCKER_ERRORS as exc:
        raise HarnessError(
            f"Docker is not reachable ({where}: {reason(exc)}); start the daemon or use --backend local"
        ) from exc
    client.api.timeout = API_TIMEOUT
    return client


def reason(exc: BaseException) -> str:
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


def first_line(text: str) -> str:
    """The first non-blank line of ``text`` (a ``--version`` answer), at most 200 characters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:200] if lines else ""


# -- import and check ---------------------------------------------------------------------


def import_checked(
    client: Any,
    tar_path: Path,
    tag: str,
    changes: list[str],
    labels: Mapping[str, str],
    checks: Mapping[str | None, str],
) -> None:
    """``docker import`` the tar as ``tag``, then check that each program of ``checks``
    (None: the image's entrypoint) answers ``--version`` with the expected first line. A
    failing image is removed and the tag goes back to the image it named before; a
    replaced older build is removed once nothing names it."""
    previous = _image_id(client, tag)
    image_id = _import(client, tar_path, tag, changes, labels)
    try:
        _check_image(client, image_id, tag, checks)
    except BaseException:
        with contextlib.suppress(*DOCKER_ERRORS):
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
    except DOCKER_ERRORS as exc:
        raise HarnessError(f"docker import of {tag} failed: {reason(exc)}") from exc
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
    except DOCKER_ERRORS as exc:
        raise HarnessError(f"cannot inspect image {ref}: {reason(exc)}") from exc


def _remove_if_orphaned(client: Any, image_id: str) -> None:
    """Drop an older build the tag no longer names, so rebuilds do not pile up."""
    with contextlib.suppress(*DOCKER_ERRORS):
        image = client.images.get(image_id)
        labels = image.labels or {}
        if not image.tags and any(k.startswith(LABEL_PREFIX) for k in labels):
            client.images.remove(image_id)


def _check_image(client: Any, image_id: str, tag: str, checks: Mapping[str | None, str]) -> None:
    for program, want in checks.items():
        code, first = image_version(client, image_id, program)
        if code != 0 or first != want:
            command = f"{program} --version" if program else "--version"
            raise HarnessError(
                f"image {tag} does not work: `{command}` exited {code} and printed "
                f"{(first or 'nothing')[:160]!r} (expected {want[:160]!r})"
            )


def image_version(client: Any, image: str, program: str | None = None) -> tuple[int, str]:
    """Run ``program --version`` (None: the image's entrypoint) in a throwaway container
    without network; (exit code, first line of stdout+stderr)."""
    container = None
    command = ["--version"]
    extra = {"entrypoint": [program]} if program is not None else {}
    shown = f"{program} --version" if program else "--version"
    try:
        container = client.containers.create(
            image, command=command, labels={CHECK_LABEL: "1"}, network_disabled=True, **extra
        )
        container.start()
        result = container.wait(timeout=CHECK_TIMEOUT)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(result.get("StatusCode", -1)), first_line(output)
    except DOCKER_ERRORS as exc:
        raise HarnessError(f"cannot run {shown} in {image}: {reason(exc)}") from exc
    finally:
        if container is not None:
            with contextlib.suppress(*DOCKER_ERRORS):
                container.remove(force=True)


# -- lookup and locking -------------------------------------------------------------------


def find_image(client: Any, labels: Mapping[str, str], preferred_tag: str) -> str | None:
    """A reference to an image with all ``labels``: ``preferred_tag`` if it is one of its
    tags, else its first tag, else its id."""
    try:
        images = client.images.list(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
    except DOCKER_ERRORS as exc:
        raise HarnessError(f"cannot list images: {reason(exc)}") from exc
    for image in images:
        if preferred_tag in image.tags:
            return preferred_tag
    for image in images:
        if image.tags:
            return str(image.tags[0])
    return str(images[0].id) if images else None


def image_labels(client: Any, tag: str) -> dict[str, str] | None:
    """The labels of the image ``tag`` names; None if there is none."""
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    except DOCKER_ERRORS as exc:
        raise HarnessError(f"cannot inspect image {tag}: {reason(exc)}") from exc
    return dict(image.labels or {})


@contextlib.contextmanager
def build_lock(key: str) -> Iterator[None]:
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
