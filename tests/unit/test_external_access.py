"""How the options reach an external cluster's nodes (harness.backends.access) and the
given-credentials side of harness.security, without servers (the servers' side is
tests/integration/test_external_secure.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from harness import options
from harness.backends.access import security_for
from harness.errors import UsageError
from harness.security import ACL_USER, HARNESS_COMMANDS, PLAIN, Security, acl_setuser

README = Path(__file__).resolve().parents[2] / "README.md"


def values(**given: Any) -> dict[str, Any]:
    """The run options as the CLI reads them, with ``given`` as text."""
    text = {k: v for k, v in given.items() if k != "tls"}
    return options.from_text("run", {**text, "tls": given.get("tls")})


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import trustme

    d = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.crt"))
    cert.cert_chain_pems[0].write_to_path(str(d / "c.crt"))
    cert.private_key_pem.write_to_path(str(d / "c.key"))
    return {"ca": str(d / "ca.crt"), "cert": str(d / "c.crt"), "key": str(d / "c.key")}


def test_external_password_logs_in_as_the_default_user() -> None:
    sec = security_for(values(backend="external", password="pw"))
    assert sec.spec.auth == "password" and sec.auth_args() == ("AUTH", "pw")
    assert not sec.tls


def test_external_acl_user_defaults_to_the_harness_user() -> None:
    sec = security_for(values(backend="external", auth="acl", password="pw"))
    assert sec.auth_args() == ("AUTH", ACL_USER, "pw")
    sec = security_for(values(backend="external", user="checker", password="pw"))
    assert sec.spec.auth == "acl" and sec.auth_args() == ("AUTH", "checker", "pw")


def test_external_tls_uses_the_given_files(pems: dict[str, str]) -> None:
    v = values(backend="external", tls_ca_cert=pems["ca"], tls_cert=pems["cert"])
    sec = security_for({**v, "tls_key": pems["key"]})
    kw = sec.redis_kwargs()
    assert kw["ssl_ca_certs"] == pems["ca"] and kw["ssl_certfile"] == pems["cert"]
    cli = ["--tls", "--cacert", pems["ca"], "--cert", pems["cert"], "--key", pems["key"]]
    assert sec.cli_args() == cli
    only_ca = security_for(values(backend="external", tls=True, tls_ca_cert=pems["ca"]))
    assert (
        only_ca.tls and only_ca.cert_file is None and "ssl_certfile" not in only_ca.redis_kwargs()
    )
    assert only_ca.ssl_context() is not None


@pytest.mark.parametrize(
    ("given", "expect"),
    [
        ({"backend": "local", "user": "u"}, "--user is for --backend external; the local backend"),
        ({"backend": "docker", "tls_ca_cert": "x"}, "--tls-ca-cert is for --backend external"),
        (
            {"backend": "external", "auth": "acl"},
            "--auth acl on --backend external needs --password",
        ),
        ({"backend": "external", "auth": "password", "user": "u", "password": "p"}, "--user u is"),
        ({"backend": "external", "tls": True}, "needs --tls-ca-cert FILE"),
        (
            {"backend": "external", "tls_ca_cert": "/nonexistent/ca"},
            "/nonexistent/ca: No such file",
        ),
        ({"backend": "external", "tls_ca_cert": "/etc/hostname"}, "not a PEM file"),
    ],
    ids=["user-local", "ca-docker", "no-password", "user-password", "no-ca", "missing", "not-pem"],
)
def test_contradictions_and_bad_files_are_one_line(given: dict[str, Any], expect: str) -> None:
    with pytest.raises(UsageError, match=r"^[^\n]+$") as err:
        security_for(values(**given))
    assert expect in str(err.value)


def test_a_client_certificate_needs_its_key(pems: dict[str, str]) -> None:
    v = values(backend="external", tls_ca_cert=pems["ca"], tls_cert=pems["cert"])
    with pytest.raises(UsageError, match="--tls-cert and --tls-key go together"):
        security_for(v)


def test_other_backends_get_no_external_security() -> None:
    assert security_for(values(backend="local", password="pw")) is PLAIN


def test_given_security_makes_no_files(tmp_path: Path) -> None:
    sec = Security.given("password", "pw")
    assert sec.ca is None and sec.server_lines(7000, "/d")[0] == "port 7000"


def test_acl_setuser_grants_exactly_the_harness_commands() -> None:
    words = shlex.split(acl_setuser("checker", "pw"))
    assert words[:8] == ["ACL", "SETUSER", "checker", "on", ">pw", "~*", "&*", "-@all"]
    assert words[8:] == [f"+{c}" for c in HARNESS_COMMANDS]  # no FLUSHALL on their cluster


def test_the_cli_prints_the_same_line(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["acl-setuser", "--user", "checker", "--password", "pw"]) == 0
    assert capsys.readouterr().out == acl_setuser("checker", "pw") + "\n"
    assert main(["acl-setuser", "--password", "has space"]) == 2


def test_the_readme_shows_the_generated_acl_setuser_line() -> None:
    assert acl_setuser() in README.read_text(), "README: paste acl_setuser()'s line"
