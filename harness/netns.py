"""Network namespaces for local clusters that can be partitioned.

A local cluster that needs network faults runs inside a namespace the harness creates:
every node gets its own address there (``bind`` + ``bind-source-addr``), so a packet's
source and destination name the two nodes, and iptables rules inside the namespace drop
traffic per (source, destination) pair. A veth pair links the namespace to the host with
a /24 of its own, so the harness's clients connect to node addresses directly, like to
containers on a Docker network, and their traffic is never subject to the pair rules.

Nothing here touches the host's own firewall; deleting the namespace removes its rules,
addresses and the veth pair at once. Each namespace is recorded in the run directory, so
the watchdog and the sweep delete it when the harness dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from harness.errors import HarnessError, NotSupportedError
from harness.runs import Run, state_dir

POOL = ipaddress.IPv4Network("10.214.0.0/16")  # one /24 per namespace
RULE_TAG = "redis-cluster-harness"


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HarnessError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None if they can."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    return None


class Namespace:
    """A namespace ``rch<n>-<tag>`` with a veth pair ``rh<n><tag>``/``rn<n><tag>`` to the
    host, and node addresses. The random tag keeps a new namespace from ever meeting the
    name of one the kernel is still tearing down (deletion is lazy)."""

    def __init__(self, run: Run) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NotSupportedError(f"network namespaces are unavailable: {reason}")
        self.run = run
        self._lock_fd, self.index, self.subnet = _claim_subnet()
        tag = os.urandom(2).hex()
        self.name = f"rch{self.index}-{tag}"
        self.host_if, self.ns_if = host_interface(self.name), f"rn{self.index}{tag}"
        hosts = list(self.subnet.hosts())
        self.host_addr, self.gateway = str(hosts[0]), str(hosts[1])
        self._free = [str(h) for h in hosts[9:]]  # node addresses: .10, .11, ...
        run.note("harness.netns:delete_namespace", self.name)
        try:
            _run(["ip", "netns", "add", self.name])
            self.ip("link", "set", "lo", "up")
            _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            _run(["ip", "link", "set", self.ns_if, "netns", self.name])
            _run(["ip", "addr", "add", f"{self.host_addr}/24", "dev", self.host_if])
            _run(["ip", "link", "set", self.host_if, "up"])
            self.ip("addr", "add", f"{self.gateway}/24", "dev", self.ns_if)
            self.ip("link", "set", self.ns_if, "up")
        except BaseException:
            self.close()
            raise

    def ip(self, *args: str) -> None:
        _run(["ip", "-n", self.name, *args])

    def add_address(self) -> str:
        """A new address for a node, on the namespace's end of the veth."""
        addr = self._free.pop(0)
        self.ip("addr", "add", f"{addr}/24", "dev", self.ns_if)
        return addr

    def exec_prefix(self) -> list[str]:
        """Prefix that runs a command inside the namespace (it execs: same pid)."""
        return ["ip", "netns", "exec", self.name]

    def iptables(self, *args: str, check: bool = True) -> None:
        _run(["ip", "netns", "exec", self.name, "iptables", "-w", *args], check=check)

    def rules(self) -> list[str]:
        """The harness's rules in the namespace (for tests and debugging)."""
        out = _run(["ip", "netns", "exec", self.name, "iptables", "-S"], check=False).stdout
        return [line for line in out.splitlines() if RULE_TAG in line]

    def close(self) -> None:
        delete_namespace(self.name)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def delete_namespace(name: str) -> None:
    """Kill what still runs inside, then delete the namespace (veth and rules go with it)."""
    pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    _run(["ip", "netns", "del", name], check=False)
    # The kernel removes the veth pair with the namespace, but lazily; do it now so a
    # leak check right after sees nothing.
    _run(["ip", "link", "del", host_interface(name)], check=False)


def host_interface(name: str) -> str:
    """The host end of namespace ``name``'s veth pair (interface names are short)."""
    index, _, tag = name.removeprefix("rch").partition("-")
    return f"rh{index}{tag}"


def _claim_subnet() -> tuple[int, int, ipaddress.IPv4Network]:
    """A /24 of :data:`POOL` no other harness process holds (flock, released on death)
    and no host interface uses."""
    d = Path(state_dir()) / "netns"
    d.mkdir(parents=True, exist_ok=True)
    used = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    for i, subnet in enumerate(POOL.subnets(new_prefix=24)):
        if i == 0:
            continue
        fd = os.open(d / f"{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        prefix = ".".join(str(subnet.network_address).split(".")[:3]) + "."
        if prefix in used or any(Path("/run/netns").glob(f"rch{i}-*")):
            os.close(fd)
            continue
        return fd, i, subnet
    raise HarnessError(f"no free /24 left in {POOL} for a namespace; delete stale rch* namespaces")
