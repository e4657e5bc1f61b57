"""Images for the docker backend, built from local binaries (and Debian trixie) and run.

Every container and network a test creates carries ``org.redis-cluster-harness.test=<id>``
(an id of this process) and is removed in a ``finally``; after each test none with that
label (or with the private label the test gives the containers ``harness.images`` uses to
check a new image) may exist. The labels are this process's own because the Docker daemon
is shared: other pytest-xdist workers, and other runs on the machine, create such
containers at the same time. Images may stay: reusing them is the point. Tests that need
Docker skip when it is not reachable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from harness import images
from harness import impl as impls
from harness.errors import HarnessError
from harness.images import docker as images_docker
from harness.impl import Implementation
from harness.wait import wait_for

TEST_LABEL = "org.redis-cluster-harness.test"
LABELS = {TEST_LABEL: uuid.uuid4().hex}  # this process's: see the module docstring
RUN_TIMEOUT = 60.0  # for a `--version` container
SERVE_TIMEOUT = 30.0  # for a server container to answer PING (normally well under 1 s)
PORT = 7000
SERVER_ARGS = ["--port", str(PORT), "--save", "", "--protected-mode", "no"]
TRIXIE_SERVERS = [
    ("redis-server", "Redis server v=8.0."),
    ("valkey-server", "Valkey server v=8.1."),
]


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return images.docker_client()
    except HarnessError as exc:
        pytest.skip(f"needs Docker: {exc}")


@pytest.fixture(autouse=True)
def nothing_left_running(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After each test: no container or network of ours, whatever the outcome. The image
    checks of this test get a label key of their own (``harness.images`` labels them
    ``CHECK_LABEL=1``), so a check another process runs meanwhile is not counted."""
    check_label = f"{images.CHECK_LABEL}.test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(images_docker, "CHECK_LABEL", check_label)
    yield
    test_label = f"{TEST_LABEL}={LABELS[TEST_LABEL]}"
    with contextlib.suppress(HarnessError), contextlib.closing(images.docker_client()) as c:
        for label in (test_label, f"{check_label}=1"):
            left = c.containers.list(all=True, filters={"label": label})
            assert not left, f"containers left behind: {[x.name for x in left]}"
        nets = c.networks.list(filters={"label": test_label})
        assert not nets, f"networks left behind: {[n.name for n in nets]}"


@pytest.fixture
def network(client: Any) -> Iterator[Any]:
    net = client.networks.create(f"rch-test-{uuid.uuid4().hex[:8]}", driver="bridge", labels=LABELS)
    try:
        yield net
    finally:
        net.remove()


@pytest.fixture
def some_binary() -> str:
    """Any installed verified server binary (for tests that do not care which)."""
    for name in ("redis-7.0", "valkey-8.0", "redis-6.2"):
        found = impls.available(name)
        if found is not None:
            return found.binary
    pytest.skip("no verified server is installed (run scripts/setup-system.sh)")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp directory for ``harness.images``, to see what it leaves behind."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def docker_run(client: Any, image: str, command: list[str]) -> str:
    """``docker run --rm IMAGE COMMAND``: the output, asserting exit status 0."""
    container = client.containers.create(image, command=command, labels=LABELS)
    try:
        container.start()
        status = container.wait(timeout=RUN_TIMEOUT)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode(errors="replace")
        assert status == 0, f"{image} {command} exited {status}: {out}"
        return str(out)
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def serving(client: Any, network: Any, image: str, command: list[str]) -> Iterator[redis.Redis]:
    """A detached server container on ``network``, reached from the host by its IP."""
    container = client.containers.run(
        image, command=command, detach=True, network=network.name, labels=LABELS
    )
    try:

        def probe() -> tuple[bool, str]:
            container.reload()
            if container.status == "exited":
                logs = container.logs().decode(errors="replace")
                pytest.fail(f"{image} {command} exited: {logs[-2000:]}")
            ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            if not ip:
                return False, f"no IP yet (status {container.status})"
            with redis.Redis(host=ip, port=PORT, socket_timeout=1, decode_responses=True) as r:
                return bool(r.ping()), ip

        ip = wait_for(probe, SERVE_TIMEOUT, f"{image} answering PING")
        with redis.Redis(host=ip, port=PORT, socket_timeout=5, decode_responses=True) as r:
            yield r
    finally:
        container.remove(force=True)


def remove_image(client: Any, ref: str) -> None:
    with contextlib.suppress(Exception):
        client.images.remove(ref, force=True)


def compile_c(tmp_path: Path, name: str, source: str, *flags: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    done = subprocess.run([cc, "-O2", *flags, "-o", str(out), str(src)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot compile a test program: {done.stderr.decode()[-300:]}")
    return out


TINY_SERVER = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
#ifdef NEEDS_HOST_FILE
    if (access("/usr/bin/env", X_OK) != 0) { fputs("no /usr/bin/env here\n", stderr); return 3; }
#endif
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        puts(VERSION);
    return 0;
}
"""


# -- images from binaries ---------------------------------------------------------------


def test_binary_image_runs_the_server(client: Any, network: Any, any_impl: Implementation) -> None:
    tag = images.image_for_binary(any_impl.binary)
    pkg = images.inspect_binary(any_impl.binary)
    image = client.images.get(tag)
    config = image.attrs["Config"]
    name = Path(any_impl.binary).name
    assert config["Entrypoint"] == [f"/usr/local/bin/{name}"]  # the name given, not resolved
    assert config["WorkingDir"] == "/data"
    assert image.labels[images.SHA_LABEL] == pkg.sha256
    assert tag == pkg.default_tag
    assert image.labels[images.VERSION_LABEL] == any_impl.version_text.splitlines()[0]

    out = docker_run(client, tag, ["--version"])
    assert out.startswith(f"{any_impl.flavor.capitalize()} server v={any_impl.version_str} ")

    args = [*SERVER_ARGS, "--cluster-enabled", "yes"]
    with serving(client, network, tag, args) as r:
        info = r.info("server")
        assert str(info.get("valkey_version", info["redis_version"])) == any_impl.version_str
        assert r.info("cluster")["cluster_enabled"] == 1
        assert r.execute_command("CLUSTER MYID")  # nodes.conf was written in /data


def test_unchanged_binary_reuses_its_image(
    client: Any, some_binary: str, tmp_path: Path, private_tmp: Path
) -> None:
    tag = images.image_for_binary(some_binary)
    image_id = client.images.get(tag).id
    sha = client.images.get(tag).labels[images.SHA_LABEL]
    started = time.monotonic()
    assert images.image_for_binary(some_binary) == tag
    assert client.images.get(tag).id == image_id
    assert time.monotonic() - started < 5, "reuse should not rebuild"

    # the same content elsewhere under the same name is the same image
    copy = tmp_path / Path(some_binary).name
    shutil.copy2(Path(some_binary).resolve(), copy)
    assert images.image_for_binary(str(copy)) == tag

    # a changed binary (bytes appended after the ELF image still run) gets a new image
    with copy.open("ab") as f:
        f.write(b"\0changed")
    new_tag = images.image_for_binary(str(copy))
    try:
        assert new_tag != tag
        assert client.images.get(new_tag).labels[images.SHA_LABEL] != sha
        assert client.images.get(tag).id == image_id
    finally:
        remove_image(client, new_tag)
    assert list(private_tmp.iterdir()) == []


def test_static_binary_and_literal_labels(client: Any, tmp_path: Path) -> None:
    version = 'Tiny server v=1.0.0 "quoted" $HOME \\back'
    c_version = version.replace("\\", "\\\\").replace('"', '\\"')
    binary = compile_c(tmp_path, "tiny-server", TINY_SERVER, "-static", f'-DVERSION="{c_version}"')
    pkg = images.inspect_binary(str(binary))
    assert pkg.libs == ()  # statically linked: nothing but the binary
    tag = f"redis-cluster-harness/test-static:{uuid.uuid4().hex[:12]}"  # not another run's
    try:
        assert images.build_from_binary(str(binary), tag) == tag
        assert client.images.get(tag).labels[images.VERSION_LABEL] == version
        assert docker_run(client, tag, ["--version"]).strip() == version
    finally:
        remove_image(client, tag)


def test_failed_check_leaves_no_image_and_keeps_the_old_one(
    client: Any, tmp_path: Path, private_tmp: Path
) -> None:
    tag = f"redis-cluster-harness/test-broken:{uuid.uuid4().hex[:12]}"  # not another run's
    good = compile_c(tmp_path, "good", TINY_SERVER, "-static", '-DVERSION="Tiny server v=1.0.0"')
    # runs on the host, but not in the image: it needs a file only the host has
    bad = compile_c(
        tmp_path,
        "bad",
        TINY_SERVER,
        "-static",
        '-DVERSION="Tiny server v=1.0.1"',
        "-DNEEDS_HOST_FILE",
    )
    try:
        images.build_from_binary(str(good), tag)
        good_id = client.images.get(tag).id
        with pytest.raises(HarnessError, match=r"does not work: `--version` exited 3") as err:
            images.build_from_binary(str(bad), tag)
        assert "\n" not in str(err.value)
        assert client.images.get(tag).id == good_id  # the tag still names the good build
        bad_sha = images.inspect_binary(str(bad)).sha256
        assert client.images.list(filters={"label": f"{images.SHA_LABEL}={bad_sha}"}) == []
        assert list(private_tmp.iterdir()) == []
    finally:
        remove_image(client, tag)


# -- bad input ----------------------------------------------------------------------------


def one_line_error(binary: str) -> str:
    with pytest.raises(HarnessError) as err:
        images.build_from_binary(binary)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_binary(tmp_path: Path) -> None:
    assert "no such file" in one_line_error(str(tmp_path / "redis-server"))
    assert "not found on PATH" in one_line_error("no-such-server-here")


def test_directory_and_non_executable(tmp_path: Path) -> None:
    assert "not an executable file" in one_line_error(str(tmp_path))
    plain = tmp_path / "redis-server"
    plain.write_bytes(b"\x7fELF")
    assert "not an executable file" in one_line_error(str(plain))


def test_wrapper_script_is_refused(tmp_path: Path, private_tmp: Path) -> None:
    script = tmp_path / "redis-server"
    script.write_text('#!/bin/sh\nexec redis-server "$@"\n')
    script.chmod(0o755)
    assert "cannot be packaged into an image (a script)" in one_line_error(str(script))
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00" * 100)
    garbage.chmod(0o755)
    assert "not an ELF file" in one_line_error(str(garbage))
    assert list(private_tmp.iterdir()) == []


def test_missing_shared_library(some_binary: str, tmp_path: Path) -> None:
    data = Path(some_binary).resolve().read_bytes()
    if b"libm.so.6\0" not in data:
        pytest.skip(f"{some_binary} does not link libm")
    broken = tmp_path / "redis-server"
    broken.write_bytes(data.replace(b"libm.so.6\0", b"libQ.so.6\0"))
    broken.chmod(0o755)
    assert "shared libraries not found: libQ.so.6" in one_line_error(str(broken))


def test_docker_not_running(
    some_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(HarnessError) as err:
        images.docker_client()
    assert str(err.value) == (
        f"Docker is not reachable (unix://{tmp_path}/docker.sock: No such file or directory); "
        "start the daemon or use --backend local"
    )
    with pytest.raises(HarnessError, match=r"^Docker is not reachable"):
        images.image_for_binary(some_binary)


def test_docker_that_does_not_answer_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(path))
        silent.listen(8)  # connections queue up, nobody ever answers
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        started = time.monotonic()
        with pytest.raises(HarnessError, match=r"Docker is not reachable \(.*no answer in time\)"):
            images.docker_client(timeout=0.5)
        assert time.monotonic() - started < 10


def test_debian_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: trixie-security\nComponents: main\n\n"
        "# a comment\nTypes: deb\nURIs: http://mirror.example/debian\n"
        "Suites: trixie trixie-updates\nComponents: main\n"
    )
    assert images.debian_mirror(sources) == "http://mirror.example/debian"
    with pytest.raises(HarnessError, match="cannot read the apt sources"):
        images.debian_mirror(tmp_path / "none.sources")


# -- Debian trixie --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trixie(client: Any) -> str:
    """The trixie image: reused if present, built only when HARNESS_BUILD_TRIXIE=1 (a
    debootstrap from the configured mirror takes minutes)."""
    exists = bool(client.images.list(name=images.TRIXIE_TAG))
    if not exists and os.environ.get("HARNESS_BUILD_TRIXIE") != "1":
        pytest.skip(f"{images.TRIXIE_TAG} is not built; set HARNESS_BUILD_TRIXIE=1 to build it")
    return images.build_trixie_image()


@pytest.mark.parametrize(("server", "version"), TRIXIE_SERVERS)
def test_trixie_image_runs_its_servers(
    client: Any, network: Any, trixie: str, server: str, version: str
) -> None:
    labels = client.images.get(trixie).labels
    assert f"{server}=" in labels[images.PACKAGES_LABEL]
    out = docker_run(client, trixie, [server, "--version"])
    assert out.startswith(version)
    with serving(client, network, trixie, [server, *SERVER_ARGS]) as r:
        assert r.info("server")["tcp_port"] == PORT
