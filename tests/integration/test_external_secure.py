"""``--backend external`` against secured clusters the harness did not start.

Each cluster is made as an operator would: six ``redis-server`` processes with
``requirepass`` and an ACL user made with the ``ACL SETUSER`` line ``python -m harness
acl-setuser`` prints, or TLS on every link with certificates of their own (``trustme``),
joined with ``redis-cli ... --cluster create``. The harness then checks
it as a subprocess with ``--password``, ``--auth acl --user``, or ``--tls --tls-ca-cert
--tls-cert --tls-key``; the conformance suite must pass and leave no key behind, and a
wrong or missing credential, a plaintext client on a TLS port, or a bad CA file must be
one line with exit status 2, before any test.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from outside import settled
from sandbox import Sandbox, assert_one_line_cli_error, outcome

from harness import guard
from harness.backends.base import control_client
from harness.ports import PortLease
from harness.security import Security
from harness.wait import wait_for

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
pytestmark = [
    pytest.mark.skipif(
        REDIS is None or REDIS_CLI is None, reason="redis-server / redis-cli not on PATH"
    ),
    # one worker under xdist: the module's outside clusters serve all its tests, instead
    # of being formed again in every worker that gets one of them
    pytest.mark.xdist_group("external_secure"),
]
TIMEOUT = 300
ADMIN_PW = "operator-pw"  # the default user's: what the operator formed the cluster with
CHECKER = "checker"  # the ACL user the operator makes for the harness
CHECKER_PW = "checker-pw"
SERVER_ARGS = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
SERVER_ARGS += ["--repl-diskless-sync-delay", "0", "--cluster-enabled", "yes"]
SERVER_ARGS += ["--cluster-node-timeout", "5000"]
ACL_ARGS = ["--user", CHECKER, "--password", CHECKER_PW]
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


@dataclass
class Secured:
    """A cluster started outside the harness, and the operator's own way into it."""

    ports: list[int]
    admin: Security  # the operator's credentials and TLS files
    tls_dir: Path | None = None  # ca.crt, client.crt, client.key

    @property
    def nodes(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def call(self, port: int, *args: Any) -> Any:
        with control_client("127.0.0.1", port, 5, self.admin) as c:
            return c.execute_command(*args)

    def key_counts(self) -> dict[int, int]:
        return {p: int(self.call(p, "DBSIZE")) for p in self.ports}

    def ready(self) -> tuple[bool, str]:
        return settled(self.call, self.ports)


def _answering(cluster: Secured, port: int) -> tuple[bool, str]:
    try:
        return cluster.call(port, "PING") == "PONG", "PONG"
    except redis.exceptions.ConnectionError as exc:
        return False, str(exc)


def _start(directory: Path, *args: str) -> subprocess.Popen[bytes]:
    assert REDIS is not None
    directory.mkdir()
    with (directory / "server.log").open("wb") as log:
        return subprocess.Popen(
            [REDIS, *SERVER_ARGS, "--dir", str(directory), *args],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _redis_cli(cluster: Secured, *args: str) -> None:
    assert REDIS_CLI is not None
    cmd = [REDIS_CLI, "--no-auth-warning", *cluster.admin.cli_args(), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def _outside(
    base: Path, admin: Security, server_args: list[str], tls_dir: Path | None = None
) -> Iterator[Secured]:
    """3 masters x 1 replica with ``server_args`` (``{port}`` filled in), formed by
    redis-cli with the operator's credentials; stopped afterwards."""
    lease = PortLease()
    ports = lease.claim(6)
    procs: list[subprocess.Popen[bytes]] = []
    cluster = Secured(ports, admin, tls_dir)
    # the operator's own control_client calls: the harness's guard must let them through
    guard.allow(lease, [("127.0.0.1", p) for p in ports])
    try:
        for p in ports:
            procs.append(_start(base / str(p), *(a.format(port=p) for a in server_args)))
        for p in ports:
            wait_for(lambda p=p: _answering(cluster, p), 15, f"redis-server on {p}")
        yield cluster
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(10)
        lease.release()
        guard.revoke(lease)


def _form(cluster: Secured) -> None:
    nodes = [f"127.0.0.1:{p}" for p in cluster.ports]
    _redis_cli(cluster, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes")
    wait_for(cluster.ready, 30, "the outside cluster ready")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """``requirepass`` on the default user (the operator's), and the harness's ACL user
    made on every node with the ``ACL SETUSER`` line ``python -m harness acl-setuser``
    prints (what the README tells an operator to run)."""
    admin = Security.given("password", ADMIN_PW)
    args = ["--port", "{port}", "--requirepass", ADMIN_PW, "--masterauth", ADMIN_PW]
    with _outside(tmp_path_factory.mktemp("guarded"), admin, args) as cluster:
        printed = subprocess.run(
            [sys.executable, "-m", "harness", "acl-setuser", *ACL_ARGS],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for p in cluster.ports:
            _redis_cli(cluster, "-p", str(p), *shlex.split(printed))
        _form(cluster)
        yield cluster


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """TLS only (``port 0``), on the bus and replication too, clients need a certificate."""
    import trustme

    base = tmp_path_factory.mktemp("encrypted")
    ca = trustme.CA(organization_name="operator")
    tls = base / "tls"
    tls.mkdir()
    ca.cert_pem.write_to_path(str(tls / "ca.crt"))
    for name, cert in (("node", ca.issue_cert("127.0.0.1")), ("client", ca.issue_cert("c"))):
        cert.cert_chain_pems[0].write_to_path(str(tls / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(tls / f"{name}.key"))
    admin = Security.given(
        "none", None, None, (tls / "ca.crt", tls / "client.crt", tls / "client.key")
    )
    args = ["--port", "0", "--tls-port", "{port}", "--tls-cluster", "yes"]
    args += ["--tls-replication", "yes", "--tls-ca-cert-file", str(tls / "ca.crt")]
    args += ["--tls-cert-file", str(tls / "node.crt"), "--tls-key-file", str(tls / "node.key")]
    with _outside(base, admin, args, tls) as cluster:
        _form(cluster)
        yield cluster


def check(box: Sandbox, cluster: Secured, *args: str) -> subprocess.CompletedProcess[str]:
    reports = str(box.dir / "reports")
    cmd = ["-m", "harness", "run", "--backend", "external", "--nodes", cluster.nodes]
    return box.run([*cmd, "--report-dir", reports, *args], timeout=TIMEOUT)


def assert_conformance_passed(box: Sandbox, res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, outcome(res)
    data = json.loads((box.dir / "reports" / "summary.json").read_text())
    passed = {t["nodeid"].split("::")[-1] for t in data["tests"] if t["outcome"] == "passed"}
    assert {
        "test_bringup_topology_is_healthy",
        "test_every_replica_follows_its_master_and_is_synced",
        "test_keyslot_matches_crc16",
        "test_wrong_master_answers_moved_to_the_owner",
        "test_replica_redirects_writes_and_reads_to_its_master",
        "test_fault_free_writes_are_all_read_back",
    } <= passed, outcome(res)


def assert_refused(res: subprocess.CompletedProcess[str], *expect: str) -> None:
    """One line, exit status 2, and no test ran (no report written)."""
    assert_one_line_cli_error(res, *expect)
    assert res.returncode == 2, outcome(res)


def test_password_cluster_passes_conformance_and_keeps_no_key(
    sandbox: Sandbox, guarded: Secured
) -> None:
    """The default user's password (``requirepass``) is all an operator gives."""
    res = check(sandbox, guarded, "--password", ADMIN_PW, "--suite", "conformance")
    assert_conformance_passed(sandbox, res)
    assert set(guarded.key_counts().values()) == {0}, guarded.key_counts()


def test_acl_user_with_the_documented_commands_passes_conformance(
    sandbox: Sandbox, guarded: Secured
) -> None:
    """The user made with ``acl_setuser()``'s line may run only HARNESS_COMMANDS, and
    that is enough for every check that runs on an external cluster, cleanup included."""
    res = check(
        sandbox,
        guarded,
        "--auth",
        "acl",
        *ACL_ARGS,
        "--suite",
        "conformance",
        "--workload-engine",
        "raw",
    )
    assert_conformance_passed(sandbox, res)
    assert set(guarded.key_counts().values()) == {0}, guarded.key_counts()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--password", "wrong-pw"], f"{WRONGPASS} (--password)"),
        ([], "NOAUTH Authentication required. (give --password"),
        (["--user", CHECKER, "--password", "wrong-pw"], f"{WRONGPASS} (--user/--password)"),
        (["--tls", "--tls-ca-cert", "/etc/hostname"], "--tls-ca-cert /etc/hostname: not a PEM"),
    ],
    ids=["wrong-password", "no-password", "wrong-acl-password", "bad-ca-file"],
)
def test_refused_credentials_are_one_line_before_any_test(
    sandbox: Sandbox, guarded: Secured, args: list[str], expect: str
) -> None:
    res = check(sandbox, guarded, *args)
    assert_refused(res, expect)
    if "(--" in expect:
        assert f"127.0.0.1:{guarded.ports[0]}: " in res.stderr, outcome(res)
    assert not (sandbox.dir / "reports").exists(), outcome(res)


def test_tls_to_a_plaintext_cluster_is_one_line(
    sandbox: Sandbox, guarded: Secured, tmp_path: Path
) -> None:
    import trustme

    ca = tmp_path / "ca.crt"
    trustme.CA().cert_pem.write_to_path(str(ca))
    res = check(sandbox, guarded, "--password", ADMIN_PW, "--tls", "--tls-ca-cert", str(ca))
    assert_refused(res, f"127.0.0.1:{guarded.ports[0]}: no TLS handshake", "(drop --tls)")


def test_tls_cluster_passes_conformance_with_the_given_files(
    sandbox: Sandbox, encrypted: Secured
) -> None:
    assert encrypted.tls_dir is not None
    t = encrypted.tls_dir
    files = ["--tls-ca-cert", str(t / "ca.crt"), "--tls-cert", str(t / "client.crt")]
    res = check(sandbox, encrypted, "--tls", *files, "--tls-key", str(t / "client.key"))
    assert_conformance_passed(sandbox, res)
    assert set(encrypted.key_counts().values()) == {0}, encrypted.key_counts()


def test_tls_cluster_without_tls_or_certificate_is_one_line(
    sandbox: Sandbox, encrypted: Secured, tmp_path: Path
) -> None:
    import trustme

    assert encrypted.tls_dir is not None
    first = f"127.0.0.1:{encrypted.ports[0]}"
    res = check(sandbox, encrypted)
    assert_refused(res, f"{first}: closed the connection", "give --tls --tls-ca-cert FILE")
    res = check(sandbox, encrypted, "--tls-ca-cert", str(encrypted.tls_dir / "ca.crt"))
    assert_refused(res, first, "client certificate", "--tls-cert FILE --tls-key FILE")
    other = tmp_path / "other-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(other))
    res = check(sandbox, encrypted, "--tls-ca-cert", str(other))
    assert_refused(res, f"{first}: its certificate does not verify", "(--tls-ca-cert)")


def test_external_only_options_are_refused_elsewhere(sandbox: Sandbox) -> None:
    res = sandbox.run(["-m", "harness", "run", "--tls-ca-cert", "ca.crt"], timeout=60)
    assert_refused(res, "--tls-ca-cert is for --backend external")
