"""The run and cluster options, declared once.

:data:`OPTIONS` is a table: one row per option (:class:`~harness.option.Option`) with its
name (the attribute it lands in: a :class:`~harness.spec.ClusterSpec` field or the
plugin's state), flag, kind, default, allowed values, help, and the layers that take it:

- ``run`` / ``up`` / ``impls`` / ``acl-setuser``: flags of ``python -m harness run`` ...;
- ``pytest``: flags of the pytest plugin;
- ``marker``: keywords of ``@pytest.mark.cluster`` and ``cluster_factory``, which are the
  fields of :class:`~harness.spec.ClusterSpec`.

The CLI and the plugin generate their flags from the table and read them through
:func:`from_text`; ``ClusterSpec`` checks its fields through :func:`check_fields`. Both go
through the option's one check (:meth:`Option.check`), so a bad value gets the same one
line wherever it comes from, spelled the way it was given: ``--masters 0: use 1..64, got
0`` or ``masters=0: use 1..64, got 0``.

Names of things in a registry (``--impl``, ``--backend``) are checked where they are
looked up (:func:`harness.impl.resolve`, :func:`harness.backends.get_backend`): the
answer depends on what is installed, and the message lists what is. ``--nodes`` goes
with ``--backend external`` only (:func:`harness.backends.external.check_options`), and
so do ``--user`` and the ``--tls-*`` files (:func:`harness.backends.access.security_for`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.backends import AVAILABLE
from harness.backends.base import PERSISTENCE
from harness.errors import UsageError
from harness.option import Kind, Layer, Option, OptionError
from harness.security import ACL_USER, AUTHS, PASSWORD_CHARS, PASSWORD_HINT
from harness.workload import ENGINES

__all__ = ["FORMATIONS", "OPTION", "OPTIONS", "SUITES", "Kind", "Layer", "Option", "OptionError"]
__all__ += ["check_fields", "for_layer", "from_text"]

FORMATIONS = ("commands", "redis-cli")
#: ``all`` is what one implementation is checked with; ``upgrade`` rehearses moving a
#: cluster from one implementation to another (``python -m harness upgrade``);
#: ``regressions`` reproduces documented bugs (``--repeat N`` for k of n)
SUITES = {
    "conformance": ("conformance",),
    "chaos": ("chaos",),
    "all": ("conformance", "chaos"),
    "upgrade": ("upgrade",),
    "regressions": ("regressions",),
}
UPGRADE_PLANS = ("in-place", "replace", "in-place-primaries-first", "replace-unsynced")

_EVERYWHERE: frozenset[Layer] = frozenset({"run", "up", "pytest"})


def _layers(*names: Layer) -> frozenset[Layer]:
    return frozenset(names)


OPTIONS: tuple[Option, ...] = (
    Option(
        "impl",
        "text",
        "implementation profile to test, e.g. redis-7.0, valkey-8.0 (`python -m harness impls`)",
        _EVERYWHERE,
        metavar="NAME",
    ),
    Option(
        "impl_binary",
        "text",
        "server executable (or wrapper script) to test",
        _EVERYWHERE,
        metavar="PATH",
    ),
    Option(
        "backend",
        "text",
        f"where nodes run: {', '.join(AVAILABLE)}",
        _layers("run", "up", "pytest", "upgrade"),
        default="local",
        metavar="NAME",
    ),
    Option(
        "image",
        "text",
        "docker backend: run this local image (e.g. from `python -m harness image build`) "
        "instead of one built from the binary",
        _EVERYWHERE,
        metavar="NAME:TAG",
    ),
    Option(
        "node_timeout_ms",
        "int",
        "cluster-node-timeout in ms; a marker's node_timeout_ms wins",
        _layers("run", "up", "pytest", "marker", "upgrade"),
        default=2000,
        flag_name="--node-timeout",
        metavar="MS",
        range=(50, 600_000),
        unit="ms",
    ),
    Option(
        "seed",
        "int",
        "seed for randomised choices (default: random, printed in the header)",
        _layers("run", "pytest", "upgrade"),
        metavar="N",
        range=(0, 2**63 - 1),
    ),
    Option(
        "report_dir",
        "text",
        "where summary.json, junit.xml and the logs of failed tests go (default: reports/)",
        _layers("run", "pytest", "upgrade"),
        metavar="DIR",
    ),
    Option(
        "workload_engine",
        "text",
        "client of recorded workloads: redis-py's asyncio RedisCluster, or raw, the "
        "harness's lean client (several times the rate)",
        _layers("run", "pytest", "upgrade"),
        default="redis-py",
        choices=ENGINES,
    ),
    Option(
        "progress",
        "text",
        "live progress of each test (phase, op counts, seed): auto shows it unless -q, as "
        "a status line on a terminal and timestamped lines in a log",
        _layers("run", "pytest", "upgrade"),
        default="auto",
        choices=("auto", "on", "off"),
    ),
    Option(
        "suite",
        "text",
        "which suites to run",
        _layers("run"),
        default="all",
        choices=tuple(sorted(SUITES)),
    ),
    Option(
        "masters",
        "int",
        "number of masters",
        _layers("up", "marker"),
        default=3,
        metavar="N",
        range=(1, 64),
    ),
    Option(
        "replicas",
        "int",
        "replicas per master",
        _layers("up", "marker"),
        default=1,
        metavar="N",
        range=(0, 8),
        unit="replicas per master",
    ),
    Option(
        "persistence",
        "text",
        "what nodes write to disk",
        _layers("up", "marker"),
        default="none",
        choices=PERSISTENCE,
    ),
    Option(
        "port",
        "int",
        "first client port; the nodes take consecutive ports (default: any free)",
        _layers("up"),
        metavar="PORT",
        range=(1024, 55535),
    ),
    Option(
        "server_args",
        "server_arg",
        "extra server config line, repeatable; given to `run`, it goes to every cluster "
        "the suites start, before a test's own",
        _layers("run", "up", "pytest", "marker", "upgrade"),
        default=(),
        flag_name="--server-arg",
        metavar="'NAME VALUE'",
        repeat=True,
    ),
    Option(
        "formation",
        "text",
        "how the nodes become a cluster: commands (the harness sends ADDSLOTS, MEET, "
        "REPLICATE itself), or redis-cli (the server's own tool: `--cluster create "
        "--cluster-replicas R --cluster-yes`, which picks masters and replicas by its own "
        "anti-affinity rules)",
        _layers("up", "marker"),
        default="commands",
        choices=FORMATIONS,
    ),
    Option(
        "ready_timeout_s",
        "float",
        "seconds to wait for a started cluster to be ready (the default grows past 30 "
        "nodes: 0.3 s more per node)",
        _layers("marker"),
        default=30.0,
        range=(1, 3600),
        unit="s",
    ),
    Option(
        "network_faults",
        "bool",
        "local backend: run in a network namespace so links can be cut",
        _layers("marker"),
        default=False,
    ),
    Option(
        "proxied",
        "bool",
        "every client and bus link goes through a Toxiproxy proxy",
        _layers("marker"),
        default=False,
    ),
    Option(
        "test_deadline",
        "float",
        "a fixed limit in seconds per test phase, instead of the one derived from the node "
        "timeout and the test's waits (0: none); a hung test fails with its nodes' states",
        _layers("run", "pytest", "upgrade"),
        metavar="SECONDS",
        range=(0, 86_400),
        unit="s",
    ),
    Option(
        "nodes",
        "text",
        "external backend: every node of the running cluster to check, as it announces "
        "itself (the harness talks to no other address)",
        _layers("run", "pytest"),
        metavar="HOST:PORT,...",
    ),
    Option(
        "allow_destructive",
        "bool",
        "external backend: also run tests that kill, pause, reconfigure or write "
        "outside the run's key prefix",
        _layers("run", "pytest"),
        default=False,
    ),
    Option(
        "no_shared_clusters",
        "bool",
        "start a cluster for every test, also for the tests marked shares_cluster "
        "(which otherwise take turns on one cluster per shape, checked between tests)",
        _layers("run", "pytest"),
        default=False,
    ),
    Option(
        "workers",
        "text",
        "run the tests in N parallel processes (pytest-xdist; `auto`: one per CPU); "
        "tests sharing a cluster go to the same process",
        _layers("run", "upgrade"),
        metavar="N",
        flag_name="-n",
    ),
    Option(
        "profiles",
        "text",
        "TOML file of your own implementation profiles (a fork, a vendor build), laid over "
        "the shipped ones; a profile of the same name replaces the shipped one "
        "(default: $HARNESS_PROFILES)",
        _layers("run", "up", "pytest", "impls", "upgrade"),
        metavar="FILE",
    ),
    Option(
        "auth",
        "text",
        "who may talk to the nodes: none; password (requirepass, masterauth); acl (the "
        "default user off, a user with only the harness's commands, see harness.security)",
        _layers("run", "up", "pytest", "marker", "upgrade"),
        default="none",
        choices=AUTHS,
    ),
    Option(
        "password",
        "text",
        "the password of --auth password/acl (default: a fresh one per cluster; the "
        "cluster's, required, on --backend external); alone, it means --auth password",
        _layers("run", "up", "pytest", "marker", "acl-setuser", "upgrade"),
        metavar="PASSWORD",
        chars=PASSWORD_CHARS,
        chars_hint=PASSWORD_HINT,
    ),
    Option(
        "tls",
        "bool",
        "TLS on client connections, replication and the cluster bus, with certificates "
        "made per cluster (--backend external: those of --tls-ca-cert ...)",
        _layers("run", "up", "pytest", "marker", "upgrade"),
        default=False,
    ),
    Option(
        "user",
        "text",
        f"external backend, --auth acl: the ACL user to log in as (default {ACL_USER}, the "
        "name of the user the harness makes on the clusters it starts)",
        _layers("run", "pytest", "acl-setuser"),
        metavar="NAME",
    ),
    Option(
        "tls_ca_cert",
        "text",
        "external backend: the CA that signed the nodes' certificates; means --tls",
        _layers("run", "pytest"),
        metavar="FILE",
    ),
    Option(
        "tls_cert",
        "text",
        "external backend: a client certificate, for servers with tls-auth-clients yes",
        _layers("run", "pytest"),
        metavar="FILE",
    ),
    Option(
        "upgrade_from",
        "text",
        "upgrade suite: what the cluster starts on: a profile (redis-7.0), a server "
        "binary, or, on docker, an image (PROFILE@IMAGE picks that profile's server in "
        "it); default: --impl",
        _layers("run", "pytest"),
        metavar="IMPL|BINARY|IMAGE",
    ),
    Option(
        "upgrade_to",
        "text",
        "upgrade suite: what the cluster is upgraded to (as --upgrade-from); without it "
        "the upgrade suite skips",
        _layers("run", "pytest"),
        metavar="IMPL|BINARY|IMAGE",
    ),
    Option(
        "upgrade_plan",
        "text",
        "upgrade suite: which plan to rehearse (default: in-place and replace); the "
        "two unsafe ones show what the checks catch",
        _layers("run", "pytest"),
        choices=UPGRADE_PLANS,
    ),
    Option(
        "upgrade_shape",
        "text",
        "upgrade suite: the cluster's shape, MASTERSxREPLICAS",
        _layers("run", "pytest"),
        default="3x1",
        metavar="MxR",
        chars=frozenset("0123456789x"),
        chars_hint="give MASTERSxREPLICAS, e.g. 3x1",
    ),
    Option(
        "upgrade_persistence",
        "text",
        "upgrade suite: what the nodes write to disk",
        _layers("run", "pytest"),
        default="none",
        choices=PERSISTENCE,
    ),
    Option(
        "repeat",
        "int",
        "regression scenarios: run each N times (seeds printed), reported as reproduced k of n",
        _layers("run", "pytest"),
        default=1,
        metavar="N",
        range=(1, 1000),
    ),
    Option(
        "rollback",
        "bool",
        "upgrade suite: after the upgrade, rehearse the way back (the same plan, from the "
        "new version to the old) and report whether a downgrade is possible",
        _layers("run", "pytest"),
        default=False,
    ),
    Option(
        "tls_key",
        "text",
        "external backend: the key of --tls-cert",
        _layers("run", "pytest"),
        metavar="FILE",
    ),
)

OPTION: Mapping[str, Option] = {o.name: o for o in OPTIONS}
MARKER_FIELDS = frozenset(o.name for o in OPTIONS if "marker" in o.layers)


def for_layer(layer: Layer) -> list[Option]:
    return [o for o in OPTIONS if layer in o.layers]


def from_text(
    layer: Layer, given: Mapping[str, str | Sequence[str] | bool | None]
) -> dict[str, Any]:
    """The options of ``layer`` from their command-line text (``None``: not given, the
    default; a switch arrives as True/False), checked; the first bad one raises a
    one-line :class:`UsageError`."""
    values: dict[str, Any] = {}
    for opt in for_layer(layer):
        text = given.get(opt.name)
        try:
            if opt.switch:
                values[opt.name] = opt.default if text is None else bool(text)
            elif text is None:
                values[opt.name] = opt.default
            elif opt.repeat:
                assert not isinstance(text, str | bool)
                values[opt.name] = tuple(opt.parse(t) for t in text)
            else:
                assert isinstance(text, str)
                values[opt.name] = opt.parse(text)
        except OptionError as exc:
            raise UsageError(f"{opt.flag} {exc.value!r}: {exc.hint}") from None
    return values


def check_fields(values: Mapping[str, Any]) -> None:
    """Check the marker options (ClusterSpec fields) in ``values``; a bad one raises a
    one-line :class:`UsageError` that names it as a keyword, ``masters=0: ...``."""
    for name, value in values.items():
        try:
            OPTION[name].check(value)
        except OptionError as exc:
            raise UsageError(f"{name}={exc.value!r}: {exc.hint}") from None
