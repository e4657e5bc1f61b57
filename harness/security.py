"""Password, ACL and TLS clusters: credentials, certificates and client settings, in one
place that every path talking to a node uses (control clients, redis-py cluster clients,
the raw workload engine, raw RESP sockets, printed ``redis-cli`` lines).

- ``auth="password"``: the default user has a password (``requirepass``); replicas
  authenticate to their master with ``masterauth``.
- ``auth="acl"``: the default user is off; the harness's user :data:`ACL_USER` may run
  only :data:`HARNESS_COMMANDS`, and replicas authenticate as :data:`REPLICATION_USER`
  (``masteruser``/``masterauth``), who may run only :data:`REPLICATION_COMMANDS`. The
  cluster bus does not authenticate.
- ``tls=True``: TLS on client connections, replication and the cluster bus (``port 0``,
  ``tls-port``, ``tls-replication``, ``tls-cluster``), mutual: servers require a client
  certificate (the default ``tls-auth-clients yes``). A CA is made per cluster with
  ``trustme`` (no network), each node gets a certificate whose SANs are every address a
  client may use for it (its own, the proxy host in front of it, 127.0.0.1), so clients
  verify hostnames too; servers verify their peers against the CA only, as Redis does.
  The files live in the cluster's directory under the run directory and go with it.
- a cluster the harness did not start (``--backend external``): nothing is generated;
  :meth:`Security.given` takes the user's password, ACL user (default :data:`ACL_USER`,
  created with the line :func:`acl_setuser` prints) and CA / client certificate files.
"""

from __future__ import annotations

import functools
import secrets
import shlex
import ssl
import string
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness.errors import UsageError

Auth = Literal["none", "password", "acl"]
AUTHS: tuple[Auth, ...] = ("none", "password", "acl")

ACL_USER = "harness"
REPLICATION_USER = "harness-replication"
#: Every command the harness and its suites send, and nothing else: control traffic
#: (CLUSTER *, INFO, CONFIG GET/SET, DEBUG LOG/SLEEP/DIGEST-VALUE, PING, WAIT, DBSIZE,
#: MIGRATE and what it sends the target), what redis-py's
#: cluster clients send on their own (COMMAND, READONLY, ASKING) and the workloads' and
#: suites' data commands. A suite that needs another command adds it here.
HARNESS_COMMANDS = (
    "ping",
    "echo",
    "info",
    "command",
    "config|get",
    "config|set",
    "debug",
    "cluster",
    "readonly",
    "readwrite",
    "asking",
    "wait",
    "dbsize",
    "exists",
    "migrate",  # harness.ops moves slots; the source then runs on the target, as the
    "restore-asking",  # same user (AUTH2): SELECT and RESTORE-ASKING
    "select",
    "get",
    "set",
    "del",
    "mget",
    "mset",
    "incr",
    "sadd",
    "smembers",
    # the conformance suite's command families (suites/conformance/test_redirection_details.py)
    "hset",
    "lpush",
    "zadd",
    "xadd",
    "pfadd",
    "setbit",
    "geoadd",
    "expire",
    "time",
    # ... its multi-key families (test_multikey.py; not SINTERCARD: 6.2 lacks it)
    "msetnx",
    "unlink",
    "touch",
    "rename",
    "copy",
    "dump",
    "sunion",
    "sunionstore",
    "sinter",
    "sintercard",
    "smove",
    "zunion",
    "zunionstore",
    "zinter",
    "zdiff",
    "rpush",
    "lmove",
    "blmove",
    "blpop",
    "xread",
    "pfmerge",
    "pfcount",
    "bitop",
    "geosearchstore",
    # ... and its transactions and scripts (test_transactions.py)
    "multi",
    "exec",
    "watch",
    "eval",
    "evalsha",
    "script|load",
    "script|exists",
    "function|load",
    "function|delete",
    "function|list",
    "fcall",
    # ... and its Pub/Sub (test_pubsub.py; channels are granted with &*)
    "publish",
    "subscribe",
    "unsubscribe",
    "spublish",
    "ssubscribe",
    "sunsubscribe",
)
#: commands a Redis 6.2 (or KeyDB 6) server lacks: an ACL rule naming a command the server
#: does not have stops it at start-up ("Error loading ACL rule"), so they are left out there
SINCE_7_0 = frozenset(
    {"function|load", "function|delete", "function|list", "fcall"}
    | {"spublish", "ssubscribe", "sunsubscribe", "sintercard"}
)
#: only on clusters the harness starts: the pool of shared clusters empties one between
#: tests (harness.plugin.shared); never granted on someone else's cluster
OWN_CLUSTER_COMMANDS = ("flushall",)
#: What a replica sends its master after AUTH.
REPLICATION_COMMANDS = ("psync", "sync", "replconf", "ping")
TLS_DIR = "tls"  # in a node's directory: ca.crt, node.crt, node.key
#: a password goes into config files and ACL rules as one word
PASSWORD_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:+=/!@%^*~,")
PASSWORD_HINT = "use letters, digits and -_.:+=/!@%^*~, (no spaces or quotes)"


@dataclass(frozen=True)
class SecuritySpec:
    """What was asked for (ClusterSpec fields ``auth``, ``password``, ``tls``)."""

    auth: Auth = "none"
    password: str | None = field(default=None, repr=False)  # None: a fresh one per cluster
    tls: bool = False

    def __post_init__(self) -> None:
        pw = self.password
        if pw is not None and (not pw or not set(pw) <= PASSWORD_CHARS):
            raise UsageError(f"password={pw!r}: {PASSWORD_HINT}")


@dataclass(frozen=True)
class Security:
    """One cluster's credentials and TLS files, and how each kind of client uses them.
    Build with :meth:`create` (a cluster the harness starts: generated) or :meth:`given`
    (one it did not: the user's password and files); :data:`PLAIN` is the open cluster."""

    spec: SecuritySpec = field(default_factory=SecuritySpec)
    user: str | None = None  # None: the default user
    password: str | None = field(default=None, repr=False)  # never in messages
    replication_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # None: no TLS
    cert_file: Path | None = None  # the client certificate (None: none sent) ...
    key_file: Path | None = None  # ... and its key
    ca: Any = field(default=None, repr=False)  # trustme.CA: issues the nodes' certificates

    @classmethod
    def create(cls, spec: SecuritySpec, directory: Path) -> Security:
        """Credentials for ``spec``; with TLS a CA and a client certificate in
        ``directory/tls`` (the cluster's directory, removed with the run)."""
        if spec.auth == "none" and not spec.tls:
            return cls(spec)
        password = None if spec.auth == "none" else spec.password or secrets.token_hex(16)
        sec = cls(
            spec,
            user=ACL_USER if spec.auth == "acl" else None,
            password=password,
            replication_password=secrets.token_hex(16) if spec.auth == "acl" else None,
        )
        if not spec.tls:
            return sec
        import trustme

        ca = trustme.CA(organization_name="redis-cluster-harness")
        tls_dir = directory / TLS_DIR
        tls_dir.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(str(tls_dir / "ca.crt"))
        client = ca.issue_cert("harness-client", common_name="harness-client")
        client.cert_chain_pems[0].write_to_path(str(tls_dir / "client.crt"))
        client.private_key_pem.write_to_path(str(tls_dir / "client.key"))
        files = [tls_dir / n for n in ("ca.crt", "client.crt", "client.key")]
        return replace(sec, ca_file=files[0], cert_file=files[1], key_file=files[2], ca=ca)

    @classmethod
    def given(
        cls,
        auth: Auth,
        password: str | None,
        user: str | None = None,
        tls_files: tuple[Path, Path | None, Path | None] | None = None,
    ) -> Security:
        """Credentials and files for a cluster the harness did not start (``--backend
        external``): nothing is generated, the files are checked now, one line each.
        ``tls_files``: the CA, and the client certificate and key (optional)."""
        sec = cls(
            SecuritySpec(auth, password, tls_files is not None),
            user=(user or ACL_USER) if auth == "acl" else None,
            password=None if auth == "none" else password,
        )
        if tls_files is None:
            return sec
        ca, cert, key = (None if f is None else f.absolute() for f in tls_files)
        sec = replace(sec, ca_file=ca, cert_file=cert, key_file=key)
        try:
            ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--tls-ca-cert {ca}: {_why(exc)}") from None
        try:
            sec.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--tls-cert {cert} --tls-key {key}: {_why(exc)}") from None
        return sec

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    def anonymous(self) -> Security:
        """The same TLS, no credentials: what a client that knows no password sees."""
        return replace(self, user=None, password=None)

    # -- servers ---------------------------------------------------------------------
    def issue_node_files(self, node_dir: Path, hosts: Sequence[str]) -> None:
        """A node's CA, certificate and key in ``node_dir/tls``, valid for ``hosts``.
        Readable by all (the directory is the run's): a container's server may not be root."""
        if self.ca is None:
            return
        out = node_dir / TLS_DIR
        out.mkdir(parents=True, exist_ok=True)
        cert = self.ca.issue_cert(*dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))
        self.ca.cert_pem.write_to_path(str(out / "ca.crt"))
        cert.cert_chain_pems[0].write_to_path(str(out / "node.crt"))
        cert.private_key_pem.write_to_path(str(out / "node.key"))
        for f in out.iterdir():
            f.chmod(0o644)

    def server_lines(
        self, port: int, data_dir: str, version: tuple[int, int, int] | None = None
    ) -> list[str]:
        """Config lines for ports, TLS and users; ``data_dir`` as the server sees it,
        ``version`` the server's (its ACL rules name only commands it has)."""
        if not self.tls:
            lines = [f"port {port}"]
        else:
            tls = f"{data_dir}/{TLS_DIR}"
            lines = [
                "port 0",
                f"tls-port {port}",
                "tls-cluster yes",
                "tls-replication yes",
                f"tls-cert-file {tls}/node.crt",
                f"tls-key-file {tls}/node.key",
                f"tls-ca-cert-file {tls}/ca.crt",
            ]
        if self.spec.auth == "password":
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        elif self.spec.auth == "acl":
            assert self.password is not None
            repl = " ".join(f"+{c}" for c in REPLICATION_COMMANDS)
            lines += [
                "user default off",
                f"user {ACL_USER} {' '.join(acl_rules(self.password, own=True, version=version))}",
                f"user {REPLICATION_USER} on >{self.replication_password} -@all {repl}",
                f"masteruser {REPLICATION_USER}",
                f"masterauth {self.replication_password}",
            ]
        return lines

    # -- clients ---------------------------------------------------------------------
    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py clients (sync, asyncio, cluster or not)."""
        kw: dict[str, Any] = {}
        if self.password is not None:
            kw["password"] = self.password
            if self.user is not None:
                kw["username"] = self.user
        if self.ca_file is not None:
            kw.update(ssl=True, ssl_ca_certs=str(self.ca_file), ssl_check_hostname=True)
        if self.cert_file is not None:
            kw.update(ssl_certfile=str(self.cert_file), ssl_keyfile=str(self.key_file))
        return kw

    def ssl_context(self) -> ssl.SSLContext | None:
        """For raw sockets and asyncio connections (hostnames checked, client cert)."""
        if self.ca_file is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def auth_args(self) -> tuple[str, ...]:
        """The AUTH command a raw connection sends first (empty: none needed)."""
        if self.password is None:
            return ()
        return ("AUTH", self.password) if self.user is None else ("AUTH", self.user, self.password)

    def cli_args(self) -> list[str]:
        """The same settings as ``redis-cli`` / ``valkey-cli`` flags."""
        args: list[str] = []
        if self.user is not None:
            args += ["--user", self.user]
        if self.password is not None:
            args += ["--pass", self.password]
        if self.ca_file is not None:
            args += ["--tls", "--cacert", str(self.ca_file)]
        if self.cert_file is not None:
            args += ["--cert", str(self.cert_file), "--key", str(self.key_file)]
        return args


PLAIN = Security()


def acl_rules(
    password: str, *, own: bool = False, version: tuple[int, int, int] | None = None
) -> list[str]:
    """The ACL rules of the harness's user: every key and channel, :data:`HARNESS_COMMANDS`
    only (and on a cluster the harness starts, ``own``, :data:`OWN_CLUSTER_COMMANDS`);
    a server ``version`` before 7.0 without the commands it lacks (:data:`SINCE_7_0`)."""
    commands = HARNESS_COMMANDS + (OWN_CLUSTER_COMMANDS if own else ())
    if version is not None and version < (7, 0, 0):
        commands = tuple(c for c in commands if c not in SINCE_7_0)
    return ["on", f">{password}", "~*", "&*", "-@all", *(f"+{c}" for c in commands)]


def acl_setuser(user: str = ACL_USER, password: str = "PASSWORD") -> str:
    """The command that creates the harness's user on a cluster it did not start, to run
    on every node (ACLs are per node): ``redis-cli -h H -p P`` + this line, shell-quoted."""
    return " ".join(shlex.quote(a) for a in ["ACL", "SETUSER", user, *acl_rules(password)])


def _why(exc: OSError | ssl.SSLError) -> str:
    """A file ssl could not load, in a few words."""
    if isinstance(exc, ssl.SSLError):
        return f"not a PEM file it can use ({exc.library}: {exc.reason})"
    return exc.strerror or str(exc)


def refusal(where: str, exc: object) -> str:
    """One line for a node that refused the harness's credentials."""
    said = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else exc
    return (
        f"{where} refused the harness's credentials ({said}) "
        "(check --auth and --password against the server's requirepass/ACL users)"
    )


@functools.cache
def tls_unsupported(binary: str) -> str | None:
    """Why ``binary`` cannot serve TLS (its own words, from a start that must fail: a TLS
    port with certificate files that do not exist), or None if it was built with TLS."""
    cmd = [binary, "--port", "0", "--tls-port", "1", "--tls-cert-file", "/nonexistent/x"]
    cmd += ["--tls-key-file", "/nonexistent/x", "--save", "", "--appendonly", "no"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} could not be probed for TLS: {exc}"
    out = (proc.stdout + proc.stderr).splitlines()
    for word in ("Bad directive", "Missing implement", "not compiled", "not supported"):
        for line in out:
            if word in line:
                return f"{Path(binary).name} is built without TLS: {line.strip()}"
    return None
