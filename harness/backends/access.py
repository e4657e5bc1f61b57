"""How the harness reaches the nodes of a cluster it did not start (``--backend
external``): the credentials and TLS files the options give, as one
:class:`~harness.security.Security` that every client path then uses, and a first
greeting per node that reports a refusal in the server's own words (``WRONGPASS ...``,
``NOAUTH ...``, a closed connection on a TLS port) in one line, before any test."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import guard
from harness.errors import HarnessError, UsageError
from harness.rawclient import ProtocolError, ReplyError, encode, parse_reply
from harness.security import PLAIN, Security

#: options that only mean something for a cluster the harness did not start
EXTERNAL_ONLY = ("user", "tls_ca_cert", "tls_cert", "tls_key")
TLS_HINT = "give --tls --tls-ca-cert FILE"
CERT_HINT = "does it require a client certificate? give --tls-cert FILE --tls-key FILE"


def security_for(values: Mapping[str, Any]) -> Security:
    """The external cluster's :class:`Security` from the option values (``backend``,
    ``auth``, ``password``, ``user``, ``tls``, ``tls_*``); PLAIN for other backends, which
    refuse the external-only options. A contradiction or a bad file is one line."""
    backend = values["backend"]
    given = [n for n in EXTERNAL_ONLY if values.get(n)]
    if backend != "external":
        if given:
            own = "ACL user (harness)" if given[0] == "user" else "certificates (--tls)"
            raise UsageError(
                f"--{given[0].replace('_', '-')} is for --backend external; "
                f"the {backend} backend makes its own {own}"
            )
        return PLAIN
    auth, password, user = values["auth"], values["password"], values["user"]
    if auth == "none" and password:  # alone, a password means --auth password ...
        auth = "acl" if user else "password"  # ... and with a user, that user's
    if user and auth != "acl":
        raise UsageError(
            f"--user {user} is the ACL user of --auth acl; --auth {auth} uses the default user"
        )
    if auth != "none" and not password:
        raise UsageError(
            f"--auth {auth} on --backend external needs --password "
            "(the cluster's password: the harness cannot make one up)"
        )
    ca, cert, key = (values.get(n) for n in EXTERNAL_ONLY[1:])
    if (values["tls"] or cert or key) and not ca:
        raise UsageError(
            "--tls on --backend external needs --tls-ca-cert FILE "
            "(the CA that signed the nodes' certificates)"
        )
    if bool(cert) != bool(key):
        raise UsageError("--tls-cert and --tls-key go together (a client certificate, its key)")
    files = (Path(ca), Path(cert) if cert else None, Path(key) if key else None) if ca else None
    return Security.given(auth, password, user, files)


class _Closed(OSError):
    """The server closed the connection before replying."""


def greet(host: str, port: int, sec: Security, timeout: float = 3.0) -> None:
    """AUTH (if any) and PING on a fresh raw connection; a refusal raises one line with
    the server's reply, code included, and the option to look at."""
    where = f"{host}:{port}"
    guard.check(host, port)
    cmds = [c for c in (sec.auth_args(), ("PING",)) if c]
    handshake = False  # under way
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            ctx = sec.ssl_context()
            handshake = ctx is not None
            with ctx.wrap_socket(raw, server_hostname=host) if ctx else raw as sock:
                handshake = False
                sock.sendall(b"".join(encode(*(a.encode() for a in c)) for c in cmds))
                replies = _read(sock, len(cmds))
    except ssl.SSLCertVerificationError as exc:
        raise HarnessError(
            f"{where}: its certificate does not verify ({exc.verify_message}) (--tls-ca-cert)"
        ) from None
    except ssl.SSLError as exc:
        said = exc.reason or str(exc)
        if "WRONG_VERSION_NUMBER" in str(exc):
            raise HarnessError(f"{where}: not a TLS port ({said}) (drop --tls)") from None
        if sec.cert_file is None:  # Redis: "certificate required"; Valkey: closed (EOF)
            raise HarnessError(f"{where}: TLS refused ({said}): {CERT_HINT}") from None
        raise HarnessError(f"{where}: TLS handshake failed ({said})") from None
    except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
        hint = f"a TLS port? {TLS_HINT}"
        if sec.tls:
            hint = "a client certificate it refuses?" if sec.cert_file else CERT_HINT
        raise HarnessError(
            f"{where}: closed the connection without a reply ({exc}): {hint}"
        ) from None
    except TimeoutError as exc:
        if handshake:  # a plaintext server waits for the end of a line that never comes
            raise HarnessError(
                f"{where}: no TLS handshake ({exc}): not a TLS port? (drop --tls)"
            ) from None
        raise HarnessError(f"--nodes: {where} is unreachable ({exc})") from None
    except ProtocolError as exc:
        raise HarnessError(f"{where}: not a Redis server ({exc})") from None
    except OSError as exc:
        raise HarnessError(f"--nodes: {where} is unreachable ({exc})") from None
    if len(cmds) == 2 and isinstance(replies[0], ReplyError):
        flags = "--user/--password" if sec.user else "--password"
        raise HarnessError(f"{where}: {replies[0]} ({flags})")
    if isinstance(replies[-1], ReplyError):
        text = str(replies[-1])
        hint = " (give --password, or --user NAME --password PW)" if "NOAUTH" in text else ""
        raise HarnessError(f"{where}: {text}{hint}")


def _read(sock: socket.socket, count: int) -> list[Any]:
    buf, pos, out = b"", 0, list[Any]()
    while len(out) < count:
        parsed = parse_reply(buf, pos)
        if parsed is None:
            chunk = sock.recv(4096)
            if not chunk:
                raise _Closed("no reply")
            buf += chunk
            continue
        reply, pos = parsed
        out.append(reply)
    return out
