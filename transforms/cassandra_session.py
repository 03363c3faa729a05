"""The Cassandra session of one worker process: connection settings (the job's rate limit
among them, applied by ``transforms.rate_limit``), TLS, routing, a shared
reference-counted session and query slots, and which driver errors are worth a retry.

The reader uses it; a writer that restores rows into Cassandra shares it. It imports no
other module of this project, so it can sit below every transform.
"""

from __future__ import annotations

import datetime
import functools
import logging
import random
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "acquire_session",
    "backoff_seconds",
    "connect",
    "ConnectionConfig",
    "consistency_level",
    "fix_driver_decoding",
    "is_retryable",
    "parse_host",
    "query_slots",
    "RangeAwarePolicy",
    "RateLimit",
    "release_session",
    "replica_range_of",
    "send_adjusted",
    "splitting_helps",
]

_INT64 = struct.Struct(">q")
_EPOCH = datetime.datetime(1970, 1, 1)


@dataclass(frozen=True)
class RateLimit:
    """``--max-rows-per-second`` as every worker receives it (``transforms.rate_limit``
    applies it).

    Attributes:
        rows_per_second: the limit on the whole job's rows per second; 0 for none.
        workers: the workers that split the limit evenly when they share no bucket.
        bucket_path: the file every process of the job takes its rows from, on the
            launcher's machine; None when workers may run on other machines (each worker
            then holds ``rows_per_second / workers``).
    """

    rows_per_second: float = 0.0
    workers: int = 1
    bucket_path: str | None = None

    def per_worker(self) -> float:
        """One worker's even share of the limit (used without a shared bucket)."""
        return self.rows_per_second / max(1, self.workers)


@dataclass(frozen=True)
class ConnectionConfig:
    """How to reach the cluster. The password never appears in repr() or logs."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    local_dc: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_enabled: bool = False
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_check_hostname: bool = False
    consistency: str = "LOCAL_QUORUM"
    connect_timeout: float = 10.0
    protocol_version: int = 4  # 5 adds checksummed frames, at a CPU cost on both sides
    read_timeout: float = 30.0
    fetch_size: int = 0  # rows per page; 0: sized from the bytes of each page read
    retries: int = 6
    max_concurrent_queries: int = 0
    rate_limit: RateLimit = RateLimit()

    def contact_points(self) -> list[tuple[str, int]]:
        """(host, port) pairs; a port given with a host wins over ``port``."""
        return [parse_host(entry, self.port) for entry in self.hosts]

    def display_data(self) -> dict[str, Any]:
        """What a runner's UI may show of the connection: never the password, nor key files."""
        return {
            "hosts": ",".join(self.hosts),
            "port": self.port,
            "local_dc": self.local_dc or "",
            "username": self.username or "",
            "ssl": self.ssl_enabled,
            "consistency": self.consistency,
        }

    def session_key(self) -> tuple[Any, ...]:
        """What makes two configs share a session: everything but per-request settings."""
        return (
            self.hosts,
            self.port,
            self.local_dc,
            self.username,
            hash(self.password),
            self.ssl_enabled,
            self.ssl_ca_file,
            self.ssl_cert_file,
            self.ssl_key_file,
            self.ssl_check_hostname,
            self.connect_timeout,
            self.protocol_version,
            self.read_timeout,
        )


def parse_host(entry: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> (host, port)."""
    entry = entry.strip()
    if not entry:
        raise ValueError("empty host")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
        port = int(port_text)
    else:
        host, port = entry, default_port
    if not host or not (0 < port < 65536):
        raise ValueError(f"bad host {entry!r}")
    return host, port


def _timestamp_or_millis(data: bytes, protocol_version: int) -> Any:
    """A CQL timestamp as the driver gives it (a naive UTC datetime), exact from its integer
    milliseconds; outside years 1-9999 the milliseconds, rendered as at the top level."""
    millis = _INT64.unpack(data)[0]
    try:
        return _EPOCH + datetime.timedelta(milliseconds=millis)
    except OverflowError:
        return millis


def _timestamps_beyond_datetime() -> None:
    """A timestamp nested in a collection, tuple or UDT, decoded by the driver, failed the
    export outside years 1-9999 ("date value out of range"); top-level ones are read as
    integers (``transforms.wire_timestamps``)."""
    from cassandra import cqltypes

    cqltypes.DateType.deserialize = staticmethod(_timestamp_or_millis)
    try:
        from cassandra import deserializers
    except ImportError:  # pure-Python driver build: DateType.deserialize is its decoder
        return
    deserializers.__dict__["DesDateType"] = deserializers.GenericDeserializer


def _user_types_named_in_digits() -> None:
    """A type the driver parses from its class name (a user type inside a vector) took a
    user type's name for an integer where its hex is all digits (``pt``: ``7074``), and
    every query of the column failed: ``'int' object has no attribute 'cassname'``."""
    from cassandra import cqltypes

    if "_names_in_digits" in vars(cqltypes.UserType):
        return
    apply, simple = cqltypes.UserType.apply_parameters.__func__, cqltypes.lookup_casstype_simple

    def apply_parameters(cls: Any, subtypes: Any, names: Any) -> Any:  # keyspace, name, fields
        named = [simple(str(t)) if isinstance(t, int) else t for t in subtypes[:2]]
        return apply(cls, [*named, *subtypes[2:]], names)

    cqltypes.UserType._names_in_digits = True
    cqltypes.UserType.apply_parameters = classmethod(apply_parameters)


class _PositionalUdtNotice(logging.Filter):
    """Drops the driver's warning that a user type whose names are not Python identifiers
    (``"from"``) comes back as a tuple: the export and the restore read UDTs by position."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("could not create a namedtuple for")


_DRIVER_TYPES_LOG = logging.getLogger("cassandra.cqltypes")


def _quiet_positional_udts() -> None:
    if not any(isinstance(f, _PositionalUdtNotice) for f in _DRIVER_TYPES_LOG.filters):
        _DRIVER_TYPES_LOG.addFilter(_PositionalUdtNotice())


def _ssl_context(config: ConnectionConfig) -> ssl.SSLContext | None:
    if not (config.ssl_enabled or config.ssl_ca_file or config.ssl_cert_file):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = config.ssl_check_hostname
    if config.ssl_ca_file:
        context.load_verify_locations(config.ssl_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.ssl_cert_file:
        context.load_cert_chain(config.ssl_cert_file, config.ssl_key_file)
    return context


def fix_driver_decoding() -> None:
    """The process-wide changes to how the driver decodes values that every export and
    restore needs (null list elements, timestamps beyond years 1-9999, sets in wire
    order, UDT names, UUIDs built directly): :func:`connect` makes them; a tool that
    decodes captured result messages without connecting makes them with this. Each is
    done once per process."""
    from transforms.fast_uuids import decode_uuids_fast
    from transforms.int_lists import decode_int_lists
    from transforms.wire_sets import decode_sets_in_wire_order

    decode_int_lists()
    decode_uuids_fast()
    _timestamps_beyond_datetime()
    decode_sets_in_wire_order()
    _user_types_named_in_digits()
    _quiet_positional_udts()


def connect(config: ConnectionConfig) -> tuple[Any, Any]:
    """A new (Cluster, Session) with token-aware, DC-aware routing and tuple rows."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import (
        DCAwareRoundRobinPolicy,
        ExponentialReconnectionPolicy,
        FallthroughRetryPolicy,
    )
    from cassandra.query import tuple_factory

    fix_driver_decoding()
    points = config.contact_points()
    ports = {p for _, p in points}
    if len(ports) > 1:
        raise ValueError("all contact points must use the same port (the driver takes one)")
    profile = ExecutionProfile(
        load_balancing_policy=RangeAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_dc)),
        retry_policy=FallthroughRetryPolicy(),  # retries are ours: backoff, splitting, metrics
        consistency_level=consistency_level(config.consistency),
        request_timeout=config.read_timeout,
        row_factory=tuple_factory,
    )
    auth = None
    if config.username is not None or config.password is not None:
        auth = PlainTextAuthProvider(username=config.username or "", password=config.password or "")
    cluster = Cluster(
        contact_points=[h for h, _ in points],
        port=ports.pop(),
        protocol_version=config.protocol_version,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        ssl_context=_ssl_context(config),
        connect_timeout=config.connect_timeout,
        control_connection_timeout=config.connect_timeout,
        reconnection_policy=ExponentialReconnectionPolicy(0.5, 10.0),
        idle_heartbeat_interval=10,
    )
    try:
        session = cluster.connect()
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session


def consistency_level(name: str) -> int:
    """The driver's value of a consistency level name (``LOCAL_QUORUM``...)."""
    from cassandra import ConsistencyLevel

    return ConsistencyLevel.name_to_value[name.upper()]


class RangeAwarePolicy:
    """Routes a token-range query to a replica of its range, then falls back to the child.

    The driver's TokenAwarePolicy needs a partition key; a range scan has none,
    so statements carry ``routing_token`` (the range's end token) instead.
    """

    def __init__(self, child: Any) -> None:
        self._child = child
        self._cluster_metadata = None

    def populate(self, cluster: Any, hosts: Any) -> None:
        self._cluster_metadata = cluster.metadata
        self._child.populate(cluster, hosts)

    def check_supported(self) -> None:
        pass

    def distance(self, host: Any) -> Any:
        return self._child.distance(host)

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[Any]:
        from cassandra.policies import HostDistance

        token = getattr(query, "routing_token", None)
        keyspace = getattr(query, "keyspace", None) or working_keyspace
        child_plan = self._child.make_query_plan(working_keyspace, query)
        if token is None or self._cluster_metadata is None or keyspace is None:
            yield from child_plan
            return
        token_map = self._cluster_metadata.token_map
        replicas = []
        if token_map is not None:
            from cassandra.metadata import Murmur3Token

            try:
                replicas = token_map.get_replicas(keyspace, Murmur3Token(token))
            except Exception:  # metadata refresh in progress: use the child's plan
                replicas = []
        local = [h for h in replicas if h.is_up and self._child.distance(h) == HostDistance.LOCAL]
        random.shuffle(local)
        for host in local:
            yield host
        for host in child_plan:
            if host not in local:
                yield host

    def on_up(self, host: Any) -> None:
        self._child.on_up(host)

    def on_down(self, host: Any) -> None:
        self._child.on_down(host)

    def on_add(self, host: Any) -> None:
        self._child.on_add(host)

    def on_remove(self, host: Any) -> None:
        self._child.on_remove(host)


def replica_range_of(session: Any) -> Callable[[bytes], int] | None:
    """A function from a partition's routing key to the index of the range of the ring that
    holds its Murmur3 token (partitions with the same index have the same replicas), from
    the session's token map as it is now; None when the driver has none."""
    import bisect

    from cassandra.metadata import Murmur3Token

    token_map = session.cluster.metadata.token_map
    if token_map is None or not token_map.ring:
        return None
    ring = [token.value for token in token_map.ring]
    hash_fn = Murmur3Token.hash_fn

    def range_of(routing: bytes) -> int:
        return bisect.bisect_left(ring, hash_fn(routing)) % len(ring)

    return range_of


# --- one session per worker process -------------------------------------------------------

_SESSIONS: dict[tuple[Any, ...], list[Any]] = {}
_SESSIONS_LOCK = threading.Lock()


def acquire_session(config: ConnectionConfig) -> Any:
    """The worker process's shared session for ``config`` (reference counted)."""
    key = config.session_key()
    with _SESSIONS_LOCK:
        entry = _SESSIONS.get(key)
        if entry is None:
            cluster, session = connect(config)
            entry = _SESSIONS[key] = [cluster, session, 0]
        entry[2] += 1
        return entry[1]


def release_session(config: ConnectionConfig) -> None:
    """Drop one reference to the session of ``config``; the last one shuts it down."""
    key = config.session_key()
    with _SESSIONS_LOCK:
        entry = _SESSIONS.get(key)
        if entry is None:
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _SESSIONS[key]
            entry[0].shutdown()


# --- retries -------------------------------------------------------------------------------


def is_retryable(exc: BaseException) -> bool:
    """Whether another try of the same page can succeed (not an authentication error)."""
    from cassandra import OperationTimedOut, ReadFailure, ReadTimeout, Unavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import (
        IsBootstrappingErrorMessage,
        OverloadedErrorMessage,
        ServerError,
    )

    if isinstance(exc, NoHostAvailable):
        errors = list(exc.errors.values())
        return not any(_is_auth_error(e) for e in errors)
    # ConnectionException (ConnectionShutdown...): the coordinator died or the connection
    # broke with the request in flight; with FallthroughRetryPolicy the driver rethrows it,
    # as it does for an overloaded or bootstrapping coordinator. Another replica can answer.
    return isinstance(
        exc,
        ReadTimeout
        | Unavailable
        | OperationTimedOut
        | ReadFailure
        | ServerError
        | ConnectionException
        | OverloadedErrorMessage
        | IsBootstrappingErrorMessage,
    )


def splitting_helps(exc: BaseException) -> bool:
    """Whether a smaller token window can succeed where ``exc`` failed. Timeouts and read
    failures (too many rows or tombstones for the timeout) can; missing replicas
    (Unavailable), no reachable host or a broken connection cannot, whatever the window:
    halving for those would only shrink the window for the rest of the unit."""
    from cassandra import OperationTimedOut, ReadFailure, ReadTimeout

    return isinstance(exc, ReadTimeout | OperationTimedOut | ReadFailure)


def _is_auth_error(exc: BaseException) -> bool:
    from cassandra import AuthenticationFailed, Unauthorized

    return isinstance(exc, AuthenticationFailed | Unauthorized)


def backoff_seconds(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * (2**attempt)))


_QUERY_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def query_slots(n: int) -> threading.BoundedSemaphore | None:
    """The worker process's semaphore of ``n`` requests in flight; None when unlimited."""
    if n <= 0:
        return None
    with _SESSIONS_LOCK:
        return _QUERY_SLOTS.setdefault(n, threading.BoundedSemaphore(n))


def send_adjusted(
    session: Any,
    statement: Any,
    adjust: Callable[[Any], None],
    paging_state: bytes | None = None,
) -> Any:
    """``session.execute_async(statement, paging_state=...)``, with ``adjust(future)``
    changing the request before it is sent (its message, its protocol handler). The steps
    of ``Session.execute_async`` in driver 3.30.1, whose public API has no per-request
    option: the same profile, routing, timeout and retry policy. The driver's own
    ``Session`` only (private methods)."""
    not_set, default_profile = _driver_defaults()
    future = session._create_response_future(
        statement, None, False, {}, not_set, default_profile, paging_state, None
    )
    adjust(future)
    session._on_request(future)
    future.send_request()
    return future


@functools.cache
def _driver_defaults() -> tuple[Any, Any]:
    """The driver's "not set" timeout and default execution profile key."""
    from cassandra.cluster import _NOT_SET, EXEC_PROFILE_DEFAULT

    return _NOT_SET, EXEC_PROFILE_DEFAULT
