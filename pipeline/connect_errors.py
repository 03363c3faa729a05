"""Connect to the cluster at launch, turning every driver failure into one clear line
(a UsageError, exit 2) that says what to check, and never holds the password."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.options import UsageError
from transforms.cassandra_session import ConnectionConfig, connect


def _scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ***."""
    return text.replace(secret, "***") if secret else text


def connect_or_explain(config: ConnectionConfig) -> tuple[Any, Any]:
    """Connect, turning driver errors into one clear line (never with the password)."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    where = ", ".join(config.hosts)
    try:
        return _connect_quietly(config)
    except NoHostAvailable as exc:
        # errors maps each host tried to its error; a list of the contact points when the
        # control connection worked but no node was usable (none in --local-dc)
        errors = list(exc.errors.values()) if isinstance(exc.errors, dict) else []
        if any(isinstance(e, AuthenticationFailed) for e in errors):
            who = f"user {config.username!r}" if config.username else "no credentials"
            raise UsageError(
                f"authentication failed at {where} with {who}: check CASSANDRA_USERNAME / "
                "CASSANDRA_PASSWORD or --credentials-file"
            ) from None
        reason = _first_reason(errors)
        hint = ""
        lowered = reason.lower()
        if config.ssl_enabled and ("violation of protocol" in lowered or "alert" in lowered):
            # The node closed the TLS handshake: it wants a client certificate it trusts.
            hint = (
                " (TLS: the nodes closed the handshake; if they require client certificates "
                "(require_client_auth), give --ssl-cert-file and --ssl-key-file signed by a CA "
                "in their truststore)"
                if not config.ssl_cert_file
                else " (TLS: the nodes refused the client certificate of --ssl-cert-file: is "
                "it signed by a CA in their truststore?)"
            )
        elif "ssl" in reason.lower() or "certificate" in reason.lower():
            hint = " (TLS: check --ssl-ca-file and the nodes' certificates)"
        elif "connection reset" in reason.lower() and not config.ssl_enabled:
            hint = " (if the nodes require TLS, add --ssl-ca-file CA.pem or --ssl)"
        elif not errors and config.local_dc:
            reason = f"no node of datacenter {config.local_dc!r} (--local-dc) can be used"
            hint = " (check the name: nodetool status lists the datacenters)"
        elif "authenticat" in reason.lower():
            hint = " (the cluster requires a user and password: set CASSANDRA_USERNAME and "
            hint += "CASSANDRA_PASSWORD)"
        raise UsageError(
            _scrub(f"cannot connect to Cassandra at {where}: {reason}{hint}", config.password)
        ) from None
    except ValueError as exc:
        raise UsageError(f"--hosts: {exc}") from None
    except Exception as exc:  # driver errors of many kinds, one line each
        raise UsageError(
            _scrub(f"cannot connect to Cassandra at {where}: {exc}", config.password)
        ) from None


def _connect_quietly(config: ConnectionConfig) -> tuple[Any, Any]:
    """connect() without the driver's own log tracebacks: its failure becomes one line."""
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        driver_log.setLevel(logging.CRITICAL)
    try:
        return connect(config)
    finally:
        driver_log.setLevel(previous)


def _first_reason(errors: list[Any]) -> str:
    if not errors:
        return "no host answered"
    error = errors[0]
    text = str(error) or type(error).__name__
    if isinstance(error, tuple | list) and error:
        text = str(error[-1])
    text = text.replace("\n", " ")
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is Cassandra running there? check --hosts and --port)"
    if "timed out" in text.lower():
        return "connection timed out (check --hosts, --port and firewalls)"
    return text[:300]
