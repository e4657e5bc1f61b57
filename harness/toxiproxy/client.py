"""A client for any Toxiproxy: the embedded server, a ``toxiproxy-server`` binary, a
container, or whatever ``TOXIPROXY_URL`` names.

It speaks the REST API directly (urllib: synchronous, as its callers are): toxiproxy-python
0.1.1 keeps the server address in class attributes (one server per process), has no HTTP
timeouts and no PATCH, so it cannot drive several servers or fail fast. Every call here
has a timeout, and every error names the server, the request and Toxiproxy's message.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from harness import guard
from harness.errors import HarnessError
from harness.wait import wait_for

DEFAULT_TIMEOUT = 5.0


class ToxiproxyError(HarnessError):
    """A Toxiproxy request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Toxic:
        return cls(
            name=data["name"],
            type=data["type"],
            stream=data.get("stream", "downstream"),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass
class Proxy:
    """A proxy on one server; methods act on that server."""

    server: Toxiproxy = field(repr=False)
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def _update(self, data: dict[str, Any]) -> Proxy:
        fresh = self.server._proxy(data)
        self.listen, self.upstream, self.enabled, self.toxics = (
            fresh.listen,
            fresh.upstream,
            fresh.enabled,
            fresh.toxics,
        )
        return self

    def refresh(self) -> Proxy:
        return self._update(self.server.request("GET", f"/proxies/{self.name}"))

    def enable(self) -> Proxy:
        return self._update(self.server.request("POST", f"/proxies/{self.name}", {"enabled": True}))

    def disable(self) -> Proxy:
        """Close the listener and every live connection through it."""
        return self._update(
            self.server.request("POST", f"/proxies/{self.name}", {"enabled": False})
        )

    def add_toxic(
        self,
        type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Any,
    ) -> Toxic:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        return Toxic.from_json(self.server.request("POST", f"/proxies/{self.name}/toxics", body))

    def remove_toxic(self, name: str) -> None:
        self.server.request("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def list_toxics(self) -> list[Toxic]:
        return [
            Toxic.from_json(t) for t in self.server.request("GET", f"/proxies/{self.name}/toxics")
        ]

    def delete(self) -> None:
        self.server.request("DELETE", f"/proxies/{self.name}")
        guard.revoke((self.server.url, self.name))


class Toxiproxy:
    """One Toxiproxy server, by URL. Instances are independent: use several at once."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Toxiproxy({self.url!r})"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("error", detail)
            raise ToxiproxyError(
                f"Toxiproxy {self.url}: {method} {path} failed ({exc.code}): {detail.strip()}",
                exc.code,
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ToxiproxyError(
                f"Toxiproxy {self.url} does not answer ({reason}); is it running?"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def version(self) -> str:
        reply = self.request("GET", "/version")
        return str(reply.get("version") if isinstance(reply, dict) else reply).strip()

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.request("POST", "/reset")

    def _proxy(self, data: dict[str, Any]) -> Proxy:
        return Proxy(
            server=self,
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data.get("enabled", True)),
            toxics=[Toxic.from_json(t) for t in data.get("toxics") or []],
        )

    def proxies(self) -> dict[str, Proxy]:
        return {name: self._proxy(p) for name, p in self.request("GET", "/proxies").items()}

    def get(self, name: str) -> Proxy:
        return self._proxy(self.request("GET", f"/proxies/{name}"))

    def create(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        """A new proxy; the harness may connect to its listener (:mod:`harness.guard`)
        until it is deleted."""
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._made(self._proxy(self.request("POST", "/proxies", body)))

    def populate(self, proxies: list[dict[str, Any]]) -> list[Proxy]:
        reply = self.request("POST", "/populate", proxies)
        items = reply.get("proxies", []) if isinstance(reply, dict) else reply
        return [self._made(self._proxy(p)) for p in items]

    def _made(self, proxy: Proxy) -> Proxy:
        guard.allow((self.url, proxy.name), [(proxy.host, proxy.port)])
        return proxy


_lock = threading.Lock()
_default: Toxiproxy | None = None


def connect(url: str | None = None) -> Toxiproxy:
    """The Toxiproxy the harness uses: ``url``, else ``$TOXIPROXY_URL``, else a
    ``toxiproxy-server`` on PATH started for this process, else the embedded server
    (started once per process, stopped at exit)."""
    global _default
    url = url or os.environ.get("TOXIPROXY_URL")
    if url:
        server = Toxiproxy(url)
        server.version()  # fail now, in one line, if it is not there
        return server
    with _lock:
        if _default is None:
            _default = _start_binary() or _start_embedded()
        return _default


def _start_embedded() -> Toxiproxy:
    from harness.toxiproxy.server import ToxiproxyServer

    srv = ToxiproxyServer(host="127.0.0.1", port=0, check_upstream=guard.check).start()
    atexit.register(srv.stop)
    return Toxiproxy(srv.url)


def _start_binary() -> Toxiproxy | None:
    binary = shutil.which("toxiproxy-server")
    if binary is None:
        return None
    from harness.ports import PortLease
    from harness.runs import Run

    lease = PortLease()
    port = lease.claim(1)[0]
    run = Run.current()
    proc = subprocess.Popen(
        [binary, "-host", "127.0.0.1", "-port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=run.env(),
    )
    run.register(proc.pid)
    server = Toxiproxy(f"http://127.0.0.1:{port}", timeout=2.0)

    def answering() -> tuple[bool, str]:
        if proc.poll() is not None:
            raise ToxiproxyError(f"{binary} exited with {proc.returncode} at start-up")
        try:
            return True, server.version()
        except ToxiproxyError as exc:
            return False, str(exc)

    wait_for(answering, 10, f"{binary} answering on port {port}")
    atexit.register(proc.kill)
    return server
