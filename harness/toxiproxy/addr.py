"""Addresses the way Toxiproxy (Go's ``net`` package) reads them: ``host:port``,
``[v6]:port`` and ``:port``, IPv4 first when a name resolves to both, and listening on
exactly one address, so a proxy's ``listen`` always names the one socket it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from typing import cast

from harness.toxiproxy.jsonio import ApiError

LISTEN_BACKLOG = 1024


def split_host_port(addr: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ``host:port``, ``[v6]:port``, ``:port``."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            problem = "missing port in address" if not rest else "unexpected ']' in address"
            raise ValueError(f"address {addr}: {problem}")
        return host, rest[1:]
    i = addr.rfind(":")
    if i < 0:
        raise ValueError(f"address {addr}: missing port in address")
    host = addr[:i]
    if ":" in host:
        raise ValueError(f"address {addr}: too many colons in address")
    return host, addr[i + 1 :]


def parse_port(port: str) -> int:
    if port.isdigit() and int(port) <= 65535:
        return int(port)
    if port == "":
        return 0
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise ValueError(f"lookup tcp/{port}: unknown port") from None


def format_addr(sockaddr: tuple[object, ...]) -> str:
    host, port = str(sockaddr[0]), int(cast(int, sockaddr[1]))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """One address for ``host``; IPv4 first, as Go does for listening."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    if not infos:
        raise ValueError(f"lookup {host}: no such host")
    info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
    return info[0], str(info[4][0])


async def resolve_listen(listen: str) -> str:
    """The address Go's ``ResolveTCPAddr`` gives (":port" for any host), to compare with
    a running proxy's address; an unusable address is a 500, as in Toxiproxy."""
    if listen == "":
        return ":0"
    try:
        host, port_text = split_host_port(listen)
        port = parse_port(port_text)
        if host == "":
            return f":{port}"
        _, ip = await _resolve(host, port)
    except (OSError, ValueError) as exc:
        raise ApiError(str(exc), 500) from None
    return format_addr((ip, port))


async def bind(listen: str) -> socket.socket:
    """A listening socket for ``listen``; errors read like Go's ``net.Listen`` ones."""
    try:
        host, port_text = split_host_port(listen) if listen else ("", "0")
        port = parse_port(port_text)
        candidates = [await _resolve(host, port)] if host else []
    except (OSError, ValueError) as exc:
        raise ApiError(f"listen tcp: {exc}", 500) from None
    if not host:  # any address: dual-stack where possible, as Go listens on [::]
        if socket.has_ipv6:
            candidates.append((socket.AF_INET6, "::"))
        candidates.append((socket.AF_INET, "0.0.0.0"))
    error: OSError | None = None
    for family, ip in candidates:
        try:
            return _listen_socket(family, ip, port)
        except OSError as exc:
            error = error or exc
    assert error is not None
    raise ApiError(f"listen tcp {listen}: bind: {_strerror(error)}", 500)


def _listen_socket(family: socket.AddressFamily, ip: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ip == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((ip, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
