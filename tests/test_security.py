"""Authentication and TLS against real Cassandra 5.0 nodes (docs/export.md: connection options,
errors).

Each class starts its own node (class-scoped, so at most one extra JVM runs at a time):

* ``TestAuth``: 127.0.2.1 with ``PasswordAuthenticator``. A role ``exporter`` with a
  distinctive password and SELECT on one keyspace exports with CASSANDRA_USERNAME /
  CASSANDRA_PASSWORD and with ``--credentials-file``; a wrong password and missing
  credentials exit 2 with exactly one stderr line; ``--password`` on argv is refused; and
  after a ``--log-level DEBUG --stats-chart`` run the password is found nowhere: not in
  stdout, stderr, any file under OUT, nor the node's logs (searched as text, base64 at
  every alignment, and hex).
* ``TestTls``: 127.0.4.1 with client encryption (PKCS12 keystore). ``--ssl-ca-file`` with
  ``--ssl-check-hostname`` exports; a CA that did not sign the node is refused (exit 2).
* ``TestMutualTls``: the same address restarted with ``require_client_auth: true``. A
  client certificate and key (``--ssl-cert-file``/``--ssl-key-file``) export; without
  them, or with a certificate of another CA, the export is refused (exit 2, one line).

The CA, node and client certificates are made with ``cryptography`` in a temporary
directory; the node keystore and truststore are PKCS12 (Cassandra 5 reads them with
``store_type: PKCS12``). Every export is checked row by row: exactly the inserted keys,
once each, with their values and writetimes.

Run: ``.venv/bin/pytest tests/test_security.py -x -q`` (needs no other node).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import shutil
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dev.cassandra_local import TEST_NODES_DIR, LocalCluster, checkout_prefix, make_keyspace
from tests import helpers
from tests.helpers import CliResult

ROLE = "exporter"
PASSWORD = "Pw-7f3c-SECRET-9911"
WRONG_PASSWORD = "Wrong-4b1d-NOPE-0042"
KEYSTORE_PASSWORD = "ks-8a1e-store"
KEYSPACE = "secure_ks"
TABLE = "items"
ROWS = 300
BASE_TS = 1_700_000_000_000_000
AUTH_PREFIX = checkout_prefix(2)
TLS_PREFIX = checkout_prefix(4)  # slot 3: test_cassandra_local
TLS_HOST = TLS_PREFIX + "1"
LOCK_DIR = Path(os.environ.get("CASSANDRA_TEST_ROOT", str(TEST_NODES_DIR)))


# --- nodes ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _address_lock(name: str, timeout: float = 600) -> Iterator[None]:
    """One pytest session at a time per loopback address of this module."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / f"{name}.lock", "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}.lock held by another session") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Node:
    cluster: LocalCluster
    host: str
    session: Any

    @property
    def hosts(self) -> str:
        return f"{self.host}:9042"

    def log_files(self) -> list[Path]:
        """Everything the node wrote besides its data: system.log, stdout/stderr, config."""
        node_dir = self.cluster.node_dir(0)
        data = node_dir / "data"
        return [p for p in node_dir.rglob("*") if p.is_file() and data not in p.parents]


def _load_rows(session: Any) -> None:
    make_keyspace(session, KEYSPACE, 1)
    session.execute(
        f"CREATE TABLE {KEYSPACE}.{TABLE} (id int PRIMARY KEY, name text, qty int)", timeout=60
    )
    insert = session.prepare(
        f"INSERT INTO {KEYSPACE}.{TABLE} (id, name, qty) VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    for i in range(ROWS):
        session.execute(insert, (i, f"item-{i}", i * 3, BASE_TS + i))


def _expected() -> list[dict[str, str]]:
    return [
        {
            "id": str(i),
            "name": f"item-{i}",
            "qty": str(i * 3),
            "name_writetime": str(BASE_TS + i),
            "qty_writetime": str(BASE_TS + i),
        }
        for i in range(ROWS)
    ]


def assert_exact_rows(out: Path) -> None:
    """Exactly the inserted keys, once each, with their values and writetimes."""
    header, rows = helpers.read_csv_parts(out)
    assert header == ["id", "name", "qty", "name_writetime", "qty_writetime"]
    counts = Counter(r["id"] for r in rows)
    assert set(counts) == {str(i) for i in range(ROWS)}
    assert max(counts.values()) == 1
    assert sorted(rows, key=lambda r: int(r["id"])) == _expected()
    assert (out / "_SUCCESS").exists()


def _new_node(
    base: Path,
    prefix: str,
    *,
    authenticator: bool = False,
    client_encryption: dict[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> LocalCluster:
    return LocalCluster(
        base,
        address_prefix=prefix,
        num_tokens=4,
        heap="512M",
        cluster_name="export-security",
        authenticator=authenticator,
        client_encryption=client_encryption,
        ssl_context=ssl_context,
    )


def _stop_node(cluster: LocalCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.node_dir(0) / "data", ignore_errors=True)  # keep the logs


def export_args(node: Node, out: Path, *extra: str) -> list[str]:
    return [
        "--hosts",
        node.hosts,
        "--table",
        f"{KEYSPACE}.{TABLE}",
        "--output",
        str(out),
        "--writetime-format",
        "micros",
        "--splits",
        "8",
        "--progress-interval",
        "0",
        *extra,
    ]


def run_subprocess(argv: list[str], env: dict[str, str] | None = None) -> CliResult:
    """The CLI as a child process, as a user runs it: no CASSANDRA_* variable is inherited
    (helpers.run_cli_subprocess would merge them back), only ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CASSANDRA_")}
    full.update(env or {})
    proc = subprocess.run(
        helpers.cli_command() + argv,
        capture_output=True,
        text=True,
        env=full,
        cwd=str(helpers.REPO),
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, argv)


def assert_refused(result: CliResult, out: Path, *words: str) -> str:
    """Exit 2, stderr exactly one ``cassandra-export: error:`` line holding ``words``,
    no traceback, nothing written that could pass for an export."""
    assert result.code == 2, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    line = lines[0]
    assert line.startswith("cassandra-export: error: "), result.describe()
    for word in words:
        assert word.lower() in line.lower(), result.describe()
    assert "Traceback" not in result.stdout + result.stderr
    assert not (out / "_SUCCESS").exists()
    assert not (out / "_manifest" / "export.json").exists()
    return line


# --- secrets: every way a password could leak as text --------------------------------------


def secret_needles(secret: str) -> list[bytes]:
    """The secret as text, hex, and as base64 at each of the three byte alignments (the
    inner characters that do not depend on the surrounding bytes)."""
    raw = secret.encode()
    needles = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\x00" * pad + raw)
        start = (pad * 4 + 2) // 3 + 1  # skip characters mixing in the padding bytes
        end = len(encoded) - 4  # and the tail that depends on what follows
        needles.append(encoded[start:end])
        needles.append(base64.urlsafe_b64encode(b"\x00" * pad + raw)[start:end])
    return [n for n in needles if len(n) >= 8]


def find_secret(secret: str, blobs: dict[str, bytes]) -> list[str]:
    """Names of the blobs that hold the secret in any form."""
    needles = secret_needles(secret)
    return sorted(name for name, data in blobs.items() if any(n in data for n in needles))


def test_secret_needles_find_embedded_base64() -> None:
    for pad in range(3):
        for tail in (b"", b"x", b"xy"):
            blob = base64.b64encode(b"ab"[:pad] + PASSWORD.encode() + tail)
            assert find_secret(PASSWORD, {"b": blob}) == ["b"]
    assert find_secret(PASSWORD, {"h": PASSWORD.encode().hex().encode()}) == ["h"]
    assert find_secret(PASSWORD, {"n": b"nothing here"}) == []


# --- authentication ------------------------------------------------------------------------


@pytest.fixture(scope="class")
def auth_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("auth-node")
    cluster = _new_node(base, AUTH_PREFIX, authenticator=True)
    with _address_lock("security-auth"):
        handle = None
        try:
            cluster.start(timeout=240)
            handle = cluster.handle()  # as the default superuser cassandra/cassandra
            session = handle.session()
            _load_rows(session)
            session.execute(f"CREATE ROLE {ROLE} WITH PASSWORD = '{PASSWORD}' AND LOGIN = true")
            session.execute(f"GRANT SELECT ON KEYSPACE {KEYSPACE} TO {ROLE}")
            yield Node(cluster, cluster.address(0), session)
        finally:
            if handle is not None:
                handle.close()
            _stop_node(cluster)


@pytest.mark.usefixtures("auth_node")
class TestAuth:
    def test_environment_credentials(
        self, auth_node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CASSANDRA_USERNAME", ROLE)
        monkeypatch.setenv("CASSANDRA_PASSWORD", PASSWORD)
        out = tmp_path / "out"
        result = helpers.run_cli(export_args(auth_node, out))
        assert result.code == 0, result.describe()
        assert_exact_rows(out)
        manifest = (out / "_manifest" / "export.json").read_text()
        assert PASSWORD not in manifest

    def test_credentials_file(
        self, auth_node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("CASSANDRA_USERNAME", raising=False)
        monkeypatch.delenv("CASSANDRA_PASSWORD", raising=False)
        creds = tmp_path / "cassandra.credentials"
        creds.write_text(f"# read-only exporter\nusername={ROLE}\npassword={PASSWORD}\n")
        creds.chmod(0o600)
        out = tmp_path / "out"
        result = helpers.run_cli(export_args(auth_node, out, "--credentials-file", str(creds)))
        assert result.code == 0, result.describe()
        assert_exact_rows(out)

    def test_refusals_are_one_line(self, auth_node: Node, tmp_path: Path) -> None:
        """Wrong password, no credentials, ``--password`` on argv: exit 2, one line each."""
        cases = {
            "wrong": (
                export_args(auth_node, tmp_path / "wrong"),
                {"CASSANDRA_USERNAME": ROLE, "CASSANDRA_PASSWORD": WRONG_PASSWORD},
            ),
            "none": (export_args(auth_node, tmp_path / "none"), {}),
            "argv": (
                export_args(auth_node, tmp_path / "argv", "--username", ROLE)
                + ["--password", PASSWORD],
                {},
            ),
            "argv=": (
                export_args(auth_node, tmp_path / "argv2", "--username", ROLE)
                + [f"--password={PASSWORD}"],
                {},
            ),
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                k: pool.submit(run_subprocess, argv, env) for k, (argv, env) in cases.items()
            }
            results = {k: f.result() for k, f in futures.items()}

        wrong = assert_refused(results["wrong"], tmp_path / "wrong", "authentication failed")
        assert f"'{ROLE}'" in wrong and auth_node.host in wrong
        none = assert_refused(results["none"], tmp_path / "none", "authentication")
        assert "CASSANDRA_USERNAME" in none and "no credentials" in none
        for key in ("argv", "argv="):
            line = assert_refused(results[key], tmp_path / key.replace("=", "2"), "password")
            assert "command line" in line and "CASSANDRA_PASSWORD" in line
        for key, result in results.items():
            text = (result.stdout + result.stderr).encode()
            assert not find_secret(WRONG_PASSWORD, {key: text}), result.describe()
            assert not find_secret(PASSWORD, {key: text}), result.describe()
        print(f"\nrefusals: {wrong}\n          {none}\n          {results['argv'].stderr.strip()}")

    def test_debug_run_leaks_the_password_nowhere(self, auth_node: Node, tmp_path: Path) -> None:
        out = tmp_path / "out"
        argv = export_args(auth_node, out, "--log-level", "DEBUG", "--stats-chart")
        argv += ["--progress-interval", "1"]
        started = time.monotonic()
        result = run_subprocess(argv, {"CASSANDRA_USERNAME": ROLE, "CASSANDRA_PASSWORD": PASSWORD})
        took = time.monotonic() - started
        assert result.code == 0, result.describe()
        assert_exact_rows(out)
        debug_lines = [line for line in result.stderr.splitlines() if " DEBUG " in line]
        assert len(debug_lines) > 20, "the run did not log at DEBUG: the check would prove nothing"
        assert any("cassandra" in line for line in debug_lines)  # the driver's own DEBUG too
        assert (out / "_manifest" / "stats.png").stat().st_size > 0

        blobs = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
        out_files = [p for p in out.rglob("*") if p.is_file()]
        blobs.update({str(p): p.read_bytes() for p in out_files})
        node_files = auth_node.log_files()
        blobs.update({str(p): p.read_bytes() for p in node_files})
        assert find_secret(PASSWORD, blobs) == []
        scanned = sum(len(b) for b in blobs.values())
        print(
            f"\nDEBUG run ({took:.1f} s): {len(debug_lines)} DEBUG lines; password absent from "
            f"{len(blobs)} blobs, {scanned:,} bytes ({len(out_files)} files under OUT, "
            f"{len(node_files)} node files), searched as text, hex and base64"
        )


# --- TLS -----------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    foreign_cert: Path
    foreign_key: Path
    keystore: Path
    truststore: Path


def _make_pki(directory: Path, node_ip: str) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: x509.Name, key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
        )

    def ca(cn: str) -> tuple[Any, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(cn, name(cn), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def leaf(
        ca_key: Any, ca_cert: x509.Certificate, cn: str, usage: Any, ip: str | None = None
    ) -> tuple[Any, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            builder(cn, ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if ip:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
            b = b.add_extension(san, critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = ca("cassandra-export test CA")
    other_key, other_cert = ca("an unrelated CA")
    node_key, node_cert = leaf(ca_key, ca_cert, "node", ExtendedKeyUsageOID.SERVER_AUTH, node_ip)
    client_key, client_cert = leaf(ca_key, ca_cert, ROLE, ExtendedKeyUsageOID.CLIENT_AUTH)
    foreign_key, foreign_cert = leaf(other_key, other_cert, ROLE, ExtendedKeyUsageOID.CLIENT_AUTH)
    pki = Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        foreign_cert=directory / "foreign.pem",
        foreign_key=directory / "foreign.key",
        keystore=directory / "node-keystore.p12",
        truststore=directory / "truststore.p12",
    )
    pki.ca.write_bytes(pem(ca_cert))
    pki.other_ca.write_bytes(pem(other_cert))
    pki.client_cert.write_bytes(pem(client_cert))
    pki.client_key.write_bytes(key_pem(client_key))
    pki.foreign_cert.write_bytes(pem(foreign_cert))
    pki.foreign_key.write_bytes(key_pem(foreign_key))
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(KEYSTORE_PASSWORD.encode())
    )
    pki.keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(b"node", node_key, node_cert, [ca_cert], encryption)
    )
    pki.truststore.write_bytes(
        pkcs12.serialize_java_truststore([pkcs12.PKCS12Certificate(ca_cert, b"ca")], encryption)
    )
    for key_file in (pki.client_key, pki.foreign_key):
        key_file.chmod(0o600)
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"), TLS_HOST)


def _client_context(pki: Pki, client_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki.ca))
    if client_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


@contextlib.contextmanager
def _tls_node(base: Path, pki: Pki, require_client_auth: bool) -> Iterator[Node]:
    encryption: dict[str, Any] = {
        "keystore": str(pki.keystore),
        "keystore_password": KEYSTORE_PASSWORD,
        "store_type": "PKCS12",
    }
    if require_client_auth:
        encryption.update(
            truststore=str(pki.truststore),
            truststore_password=KEYSTORE_PASSWORD,
            require_client_auth="true",
        )
    cluster = _new_node(
        base,
        TLS_PREFIX,
        client_encryption=encryption,
        ssl_context=_client_context(pki, require_client_auth),
    )
    with _address_lock("security-tls"):
        handle = None
        try:
            cluster.start(timeout=240)
            handle = cluster.handle()
            session = handle.session()
            _load_rows(session)
            yield Node(cluster, cluster.address(0), session)
        finally:
            if handle is not None:
                handle.close()
            _stop_node(cluster)


@pytest.fixture(scope="class")
def tls_node(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Node]:
    with _tls_node(tmp_path_factory.mktemp("tls-node"), pki, False) as node:
        yield node


@pytest.fixture(scope="class")
def mtls_node(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Node]:
    with _tls_node(tmp_path_factory.mktemp("mtls-node"), pki, True) as node:
        yield node


class TestTls:
    def test_export_verifies_the_node_certificate(
        self, tls_node: Node, pki: Pki, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        argv = export_args(tls_node, out, "--ssl-ca-file", str(pki.ca), "--ssl-check-hostname")
        result = helpers.run_cli(argv)
        assert result.code == 0, result.describe()
        assert_exact_rows(out)

    def test_refusals(self, tls_node: Node, pki: Pki, tmp_path: Path) -> None:
        cases = {
            "wrong-ca": export_args(
                tls_node, tmp_path / "wrong-ca", "--ssl-ca-file", str(pki.other_ca)
            ),
            "plaintext": export_args(tls_node, tmp_path / "plaintext", "--connect-timeout", "3"),
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {k: pool.submit(run_subprocess, argv) for k, argv in cases.items()}
            results = {k: f.result() for k, f in futures.items()}
        wrong_ca = assert_refused(
            results["wrong-ca"], tmp_path / "wrong-ca", "cannot connect", TLS_HOST, "--ssl-ca-file"
        )
        assert "certificate" in wrong_ca.lower()
        plaintext = assert_refused(results["plaintext"], tmp_path / "plaintext", TLS_HOST, "--ssl")
        print(f"\nwrong CA:   {wrong_ca}\nno TLS:     {plaintext}")


class TestMutualTls:
    def test_export_with_a_client_certificate(
        self, mtls_node: Node, pki: Pki, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        argv = export_args(
            mtls_node,
            out,
            "--ssl-ca-file",
            str(pki.ca),
            "--ssl-cert-file",
            str(pki.client_cert),
            "--ssl-key-file",
            str(pki.client_key),
        )
        result = helpers.run_cli(argv)
        assert result.code == 0, result.describe()
        assert_exact_rows(out)

    def test_refused_without_an_accepted_client_certificate(
        self, mtls_node: Node, pki: Pki, tmp_path: Path
    ) -> None:
        cases = {
            "no-cert": export_args(mtls_node, tmp_path / "no-cert", "--ssl-ca-file", str(pki.ca)),
            "foreign-cert": export_args(
                mtls_node,
                tmp_path / "foreign-cert",
                "--ssl-ca-file",
                str(pki.ca),
                "--ssl-cert-file",
                str(pki.foreign_cert),
                "--ssl-key-file",
                str(pki.foreign_key),
            ),
            "cert-without-key": export_args(
                mtls_node,
                tmp_path / "cert-without-key",
                "--ssl-ca-file",
                str(pki.ca),
                "--ssl-cert-file",
                str(pki.client_cert),
            ),
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {k: pool.submit(run_subprocess, argv) for k, argv in cases.items()}
            results = {k: f.result() for k, f in futures.items()}
        lines = {}
        for key in ("no-cert", "foreign-cert"):
            lines[key] = assert_refused(
                results[key], tmp_path / key, "cannot connect", TLS_HOST, "client certificate"
            )
        assert "--ssl-cert-file and --ssl-key-file" in lines["no-cert"]
        assert "refused the client certificate" in lines["foreign-cert"]
        lines["cert-without-key"] = assert_refused(
            results["cert-without-key"], tmp_path / "cert-without-key", "--ssl-key-file"
        )
        print("\n" + "\n".join(f"{k:17} {v}" for k, v in lines.items()))
