"""harness.security: config lines, client settings and options, without servers
(the servers' side is tests/integration/test_secure_clusters.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from harness import options
from harness.errors import UsageError
from harness.security import (
    ACL_USER,
    HARNESS_COMMANDS,
    OWN_CLUSTER_COMMANDS,
    PLAIN,
    REPLICATION_USER,
    SINCE_7_0,
    Security,
    SecuritySpec,
    acl_rules,
)
from harness.spec import ClusterSpec


def test_plain_cluster_has_only_a_port() -> None:
    assert PLAIN.server_lines(7000, "/d") == ["port 7000"]
    assert PLAIN.redis_kwargs() == {}
    assert PLAIN.auth_args() == ()
    assert PLAIN.ssl_context() is None
    assert PLAIN.cli_args() == []


def test_password_sets_requirepass_and_masterauth(tmp_path: Path) -> None:
    sec = Security.create(SecuritySpec("password", "s3cret"), tmp_path)
    assert sec.server_lines(7000, "/d") == [
        "port 7000",
        "requirepass s3cret",
        "masterauth s3cret",
    ]
    assert sec.redis_kwargs() == {"password": "s3cret"}
    assert sec.auth_args() == ("AUTH", "s3cret")
    assert sec.anonymous().auth_args() == ()


def test_acl_user_gets_only_the_harness_commands(tmp_path: Path) -> None:
    sec = Security.create(SecuritySpec("acl", "pw"), tmp_path)
    lines = sec.server_lines(7000, "/d")
    assert "user default off" in lines
    user = next(ln for ln in lines if ln.startswith(f"user {ACL_USER} "))
    assert user.split()[3:7] == [">pw", "~*", "&*", "-@all"]
    # on its own cluster also FLUSHALL: the pool of shared clusters empties one between tests
    assert user.split()[7:] == [f"+{c}" for c in (*HARNESS_COMMANDS, *OWN_CLUSTER_COMMANDS)]
    repl = next(ln for ln in lines if ln.startswith(f"user {REPLICATION_USER} "))
    assert f"masteruser {REPLICATION_USER}" in lines
    assert f"masterauth {repl.split()[3][1:]}" in lines  # the replication user's password
    assert sec.auth_args() == ("AUTH", ACL_USER, "pw")
    assert sec.redis_kwargs() == {"username": ACL_USER, "password": "pw"}


def test_fresh_password_when_none_given(tmp_path: Path) -> None:
    a = Security.create(SecuritySpec("password"), tmp_path)
    b = Security.create(SecuritySpec("password"), tmp_path)
    assert a.password and b.password and a.password != b.password


def test_tls_files_and_lines(tmp_path: Path) -> None:
    sec = Security.create(SecuritySpec(tls=True), tmp_path)
    assert sec.tls
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == [
        "ca.crt",
        "client.crt",
        "client.key",
    ]
    node = tmp_path / "node-0"
    sec.issue_node_files(node, ["10.1.2.3"])
    assert sorted(p.name for p in (node / "tls").iterdir()) == ["ca.crt", "node.crt", "node.key"]
    lines = sec.server_lines(7000, "/data")
    assert lines[:4] == ["port 0", "tls-port 7000", "tls-cluster yes", "tls-replication yes"]
    assert "tls-cert-file /data/tls/node.crt" in lines
    kw = sec.redis_kwargs()
    assert kw["ssl"] is True and kw["ssl_check_hostname"] is True
    ctx = sec.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname
    assert "--tls" in sec.cli_args()


def test_node_certificate_names_every_address(tmp_path: Path) -> None:
    from cryptography import x509

    sec = Security.create(SecuritySpec(tls=True), tmp_path)
    sec.issue_node_files(tmp_path, ["10.1.2.3", "10.1.2.1"])
    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "node.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert ips == {"10.1.2.3", "10.1.2.1", "127.0.0.1"}


@pytest.mark.parametrize("bad", ["", "has space", 'quo"te', "new\nline"])
def test_password_that_breaks_a_config_file_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match=r"^password="):
        ClusterSpec(auth="password", password=bad)


def test_password_alone_means_auth_password() -> None:
    assert ClusterSpec(password="x").auth == "password"
    assert ClusterSpec(auth="acl", password="x").auth == "acl"
    assert ClusterSpec().security == SecuritySpec()


def test_auth_choices_and_tls_flag_from_the_table() -> None:
    with pytest.raises(UsageError, match=r"^--auth 'ldap': choose one of: none, password, acl$"):
        options.from_text("run", {"auth": "ldap"})
    values = options.from_text("run", {"tls": True, "auth": "acl"})
    assert values["tls"] is True and values["auth"] == "acl"
    assert options.from_text("run", {})["tls"] is False
    assert options.OPTION["tls"].to_text(True) == ["--tls"]
    assert options.OPTION["tls"].to_text(False) == []
    with pytest.raises(UsageError, match=r"^auth='ldap': choose one of"):
        ClusterSpec(auth="ldap")  # type: ignore[arg-type]


def test_acl_rules_name_only_commands_the_server_has() -> None:
    """A rule naming a command the server lacks stops it at start-up (Redis 6.2 and
    FCALL, SPUBLISH, ...): before 7.0 those are left out."""
    old = acl_rules("pw", own=True, version=(6, 2, 14))
    new = acl_rules("pw", own=True, version=(7, 0, 15))
    assert not {f"+{c}" for c in SINCE_7_0} & set(old)
    assert {f"+{c}" for c in SINCE_7_0} <= set(new)
    assert set(new) - set(old) == {f"+{c}" for c in SINCE_7_0}
