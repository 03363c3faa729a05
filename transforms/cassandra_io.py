"""Read a Cassandra table with WRITETIME()/TTL() of every cell, as Beam elements.

Usage in any pipeline::

    rows = p | ReadCassandraWithWritetime(
        connection=ConnectionConfig(hosts=("127.0.0.1:9042",)),
        keyspace="shop", table="orders", writetime_columns="*")

``rows`` holds one dict per Cassandra row: the exported columns, then
``<col>_writetime`` (microseconds; collections normalized by policy) and
``<col>_ttl``. The export pipeline uses the lower-level :class:`ReadTokenRanges`,
which emits batches of plain tuples per work unit piece so that a whole piece can be
committed to one file::

    work units --Reshuffle--> ReadTokenRanges (splittable: one restriction per unit,
    claims each partition token once) --> RowBatch..., PieceEnd  (per piece)

A piece is the part of a work unit that one ``process()`` call read; it is a whole
unit unless the runner split the restriction or ``checkpoint_rows`` ran out.
"""

from __future__ import annotations

import gc
import io
import logging
import pickle
import random
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from transforms.table_plan import TablePlan

_LOG = logging.getLogger(__name__)
NAMESPACE = "cassandra_export"


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
    read_timeout: float = 30.0
    fetch_size: int = 5000
    retries: int = 6
    max_concurrent_queries: int = 0
    max_rows_per_second_per_worker: float = 0.0

    def contact_points(self) -> list[tuple[str, int]]:
        """(host, port) pairs; a port given with a host wins over ``port``."""
        points = []
        for entry in self.hosts:
            host, port = parse_host(entry, self.port)
            points.append((host, port))
        return points

    def session_key(self) -> tuple[Any, ...]:
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


def _allow_null_list_elements() -> None:
    """TTL(<non-frozen collection>) is a list<int> that may hold nulls (elements
    without TTL), and WRITETIME(<non-frozen UDT>) a list<bigint> with a null per null
    field; the driver's Cython list decoder rejects those, its Python one does not."""
    try:
        from cassandra import cqltypes, deserializers
    except ImportError:  # pure-Python driver build: nothing to do
        return
    for type_name in ("ListType(Int32Type)", "ListType(LongType)"):
        list_type = cqltypes.lookup_casstype(type_name)
        deserializers.__dict__["Des" + list_type.__name__] = deserializers.GenericDeserializer


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

    _allow_null_list_elements()
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
        protocol_version=5,
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


# --- one session per worker process -------------------------------------------------------

_SESSIONS: dict[tuple[Any, ...], list[Any]] = {}
_SESSIONS_LOCK = threading.Lock()


GC_GEN0_THRESHOLD = 20_000


def relax_gc() -> None:
    """Fewer cyclic garbage collections in this process while rows stream through it.

    A scan allocates millions of short-lived row tuples, none of them in reference cycles;
    with Python's default young-generation threshold (700 net allocations) the collector
    ran about 5,700 times during a 2M-row export and took 13% of its CPU (measured). At
    20,000 it runs a handful of times; garbage that is cyclic is still collected."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


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


class RateLimiter:
    """A token bucket shared by the threads of one worker process."""

    def __init__(self, rows_per_second: float) -> None:
        self.rate = rows_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def acquire(self, rows: int) -> None:
        if self.rate <= 0 or rows <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + rows / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


_LIMITERS: dict[float, RateLimiter] = {}
_QUERY_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def _limiter(rate: float) -> RateLimiter:
    with _SESSIONS_LOCK:
        return _LIMITERS.setdefault(rate, RateLimiter(rate))


def _query_slots(n: int) -> threading.BoundedSemaphore | None:
    if n <= 0:
        return None
    with _SESSIONS_LOCK:
        return _QUERY_SLOTS.setdefault(n, threading.BoundedSemaphore(n))


# --- elements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PieceKey:
    """Identifies the part of a work unit read by one process() call."""

    unit_id: int
    unit_start: int
    piece_start: int  # exclusive lower token bound of the piece

    @property
    def offset(self) -> int:
        return self.piece_start - self.unit_start


class PieceElement:
    """What flows from the reader to the writer: RowBatch... then PieceEnd, per piece."""

    __slots__ = ()


@dataclass
class RowBatch(PieceElement):
    """Rows (tuples in plan order, token dropped) read for one piece."""

    piece: PieceKey
    rows: list[tuple[Any, ...]]


@dataclass
class PieceEnd(PieceElement):
    """The last element of a piece: its final end token and what it took."""

    piece: PieceKey
    piece_end: int
    rows_read: int
    windows_split: int = 0
    retries: int = 0


class _ValuePickler(pickle.Pickler):
    """Pickles driver values; UDT values (namedtuples of classes the driver makes on the
    fly, which cannot be pickled by name) travel as plain tuples: they are read by position."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is not tuple and isinstance(obj, tuple) and cls.__module__.startswith("cassandra"):
            return tuple, (tuple(obj),)
        return NotImplemented


class PieceElementCoder(coders.Coder):
    """Coder of reader output. Elements are encoded only where a runner does not fuse
    reader and writer; Beam's size sampling uses ``estimate_size``, which is cheap."""

    def encode(self, value: PieceElement) -> bytes:
        buffer = io.BytesIO()
        _ValuePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return buffer.getvalue()

    def decode(self, encoded: bytes) -> PieceElement:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: Any) -> int:
        rows = getattr(value, "rows", None)
        if rows:
            return 32 + len(rows) * 16 * len(rows[0])
        return 64

    def to_type_hint(self) -> type:
        return PieceElement


beam.coders.registry.register_coder(PieceElement, PieceElementCoder)


class _TokenRestrictionCoder(coders.Coder):
    """OffsetRange over tokens reaches 2**63; fixed-width signed bytes never overflow."""

    def encode(self, value: OffsetRange) -> bytes:
        return value.start.to_bytes(9, "big", signed=True) + value.stop.to_bytes(
            9, "big", signed=True
        )

    def decode(self, encoded: bytes) -> OffsetRange:
        return OffsetRange(
            int.from_bytes(encoded[:9], "big", signed=True),
            int.from_bytes(encoded[9:18], "big", signed=True),
        )

    def is_deterministic(self) -> bool:
        return True


class _TokenRangeRestrictionProvider(RestrictionProvider):
    """Work unit ``(start, end]`` <-> OffsetRange ``[start + 1, end + 1)`` of token positions."""

    def initial_restriction(self, element: Sequence[int]) -> OffsetRange:
        _, _, start, end = element
        return OffsetRange(start + 1, end + 1)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return restriction.size()

    def split(self, element: Any, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction  # work units are already planned to size

    def restriction_coder(self) -> coders.Coder:
        return _TokenRestrictionCoder()


_TOKEN_RANGES = beam.DoFn.RestrictionParam(_TokenRangeRestrictionProvider())


@beam.typehints.with_output_types(PieceElement)
class ReadRangesFn(beam.DoFn):
    """Splittable read of ``(unit_id, unit_start, start, end)``: the token range ``(start, end]``
    of work unit ``unit_id``; emits RowBatch..., PieceEnd."""

    def __init__(
        self,
        connection: ConnectionConfig,
        plan: TablePlan,
        batch_size: int = 1000,
        checkpoint_rows: int = 0,
    ) -> None:
        self.connection = connection
        self.plan = plan
        self.batch_size = batch_size
        self.checkpoint_rows = checkpoint_rows
        self.rows_counter = Metrics.counter(NAMESPACE, "rows_read")
        self.pages_counter = Metrics.counter(NAMESPACE, "pages")
        self.retries_counter = Metrics.counter(NAMESPACE, "retries")
        self.splits_counter = Metrics.counter(NAMESPACE, "ranges_split")

    def setup(self) -> None:
        relax_gc()
        self._session = acquire_session(self.connection)
        self._statement = self._session.prepare(self.plan.select_cql())
        self._statement.fetch_size = self.connection.fetch_size
        self._statement.consistency_level = consistency_level(self.connection.consistency)
        self._limiter = _limiter(self.connection.max_rows_per_second_per_worker)
        self._slots = _query_slots(self.connection.max_concurrent_queries)

    def teardown(self) -> None:
        if getattr(self, "_session", None) is not None:
            release_session(self.connection)
            self._session = None

    def process(
        self,
        element: tuple[int, int, int, int],
        tracker: beam.DoFn.RestrictionParam = _TOKEN_RANGES,
    ) -> Iterator[RowBatch | PieceEnd]:
        unit_id, unit_start, _start, _end = element
        restriction = tracker.current_restriction()
        piece = PieceKey(unit_id, unit_start, restriction.start - 1)
        reader = _RangeReader(self, tracker, piece)
        yield from reader.run()
        self.rows_counter.inc(reader.rows)
        self.retries_counter.inc(reader.retries)
        self.splits_counter.inc(reader.windows_split)
        yield PieceEnd(
            piece,
            tracker.current_restriction().stop - 1,
            reader.rows,
            reader.windows_split,
            reader.retries,
        )


class RangeReadError(RuntimeError):
    """A token range kept failing after every retry and split."""


class _RangeReader:
    """Reads one restriction: windows of the token range, pages, claims, batches."""

    MIN_WINDOW = 1 << 20  # never split a failing window below this many tokens

    def __init__(self, fn: ReadRangesFn, tracker: Any, piece: PieceKey) -> None:
        self.fn = fn
        self.tracker = tracker
        self.piece = piece
        self.rows = 0
        self.retries = 0
        self.windows_split = 0

    def run(self) -> Iterator[RowBatch]:
        tracker = self.tracker
        complete = self.piece.piece_start  # every partition with token <= complete is read
        last_token: int | None = None  # the partition being read (claimed)
        partial = 0  # rows of last_token delivered so far
        window: int | None = None  # None: the rest of the range in one query
        batch: list[tuple[Any, ...]] = []
        since_checkpoint = 0
        batch_size = self.fn.batch_size
        checkpoint_rows = self.fn.checkpoint_rows
        while True:
            stop = tracker.current_restriction().stop - 1  # never cache the end
            if complete >= stop:
                break
            window_end = stop if window is None else min(stop, complete + window)
            skip = partial  # after a split, rows of last_token already delivered
            query_after = complete  # fixed for the window: a paging state belongs to its query
            paging_state = None
            failures = 0
            split = False
            pending = None  # the request of the page at paging_state, already sent
            while True:
                try:
                    if pending is None:
                        pending = self._start(query_after, window_end, paging_state)
                    rows, next_state = self._finish(pending)
                except Exception as exc:
                    pending = None  # a retry asks again from the same paging_state
                    if not is_retryable(exc):
                        raise
                    failures += 1
                    self.retries += 1
                    if failures <= self.fn.connection.retries:
                        time.sleep(backoff_seconds(failures - 1))
                        continue
                    width = window_end - complete
                    if width // 2 < self.MIN_WINDOW or not splitting_helps(exc):
                        raise RangeReadError(
                            f"work unit {self.piece.unit_id}: token range "
                            f"({complete}, {window_end}] failed {failures} times: {exc}"
                        ) from exc
                    window = width // 2
                    self.windows_split += 1
                    _LOG.warning(
                        "work unit %d: token range (%d, %d] kept failing (%s); "
                        "reading it in windows of %d tokens",
                        self.piece.unit_id,
                        complete,
                        window_end,
                        type(exc).__name__,
                        window,
                    )
                    split = True
                    break
                failures = 0
                paging_state = next_state
                # Prefetch: the next page is read while this one is processed.
                pending = (
                    None
                    if paging_state is None
                    else self._start(query_after, window_end, paging_state)
                )
                for row in rows:
                    token = row[0]
                    if token == last_token:
                        if skip:
                            skip -= 1
                            continue
                        partial += 1
                    else:
                        # A new partition: the previous one is complete.
                        if checkpoint_rows and since_checkpoint >= checkpoint_rows:
                            tracker.defer_remainder()
                            if batch:
                                yield RowBatch(self.piece, batch)
                            return
                        if not tracker.try_claim(token):
                            if batch:
                                yield RowBatch(self.piece, batch)
                            return
                        if last_token is not None:
                            complete = last_token
                        last_token = token
                        partial = 1
                        skip = 0
                    batch.append(row[1:])
                    self.rows += 1
                    since_checkpoint += 1
                    if len(batch) >= batch_size:
                        yield RowBatch(self.piece, batch)
                        batch = []
                # The driver keeps every answered request, and so its page, referenced from
                # its timeout timer until the timeout would have fired (--read-timeout):
                # empty the page once read, or a fast scan holds dozens of pages per worker.
                if type(rows) is list:
                    rows.clear()
                if paging_state is None:
                    break
            if split:
                continue
            complete = window_end
            if last_token is not None and last_token <= window_end:
                partial = 0  # that partition is complete too
        if batch:
            yield RowBatch(self.piece, batch)
        tracker.try_claim(tracker.current_restriction().stop)

    def _fetch(
        self, after: int, upto: int, paging_state: bytes | None
    ) -> tuple[list[tuple[Any, ...]], bytes | None]:
        return self._finish(self._start(after, upto, paging_state))

    def _start(self, after: int, upto: int, paging_state: bytes | None) -> Any:
        """Send the request of one page; ``_finish`` waits for it. Never raises: an error
        is raised by ``_finish``, where the retry logic is."""
        bound = self.fn._statement.bind((after, upto))
        bound.routing_token = upto
        session = self.fn._session
        slots = self.fn._slots
        if slots is not None:
            slots.acquire()
        execute_async = getattr(session, "execute_async", None)
        if execute_async is None:  # a session without async requests: read it now
            try:
                return _Sent(result=session.execute(bound, paging_state=paging_state))
            except Exception as exc:
                return _Sent(error=exc)
            finally:
                if slots is not None:
                    slots.release()
        try:
            future = execute_async(bound, paging_state=paging_state)
        except Exception as exc:
            if slots is not None:
                slots.release()
            return _Sent(error=exc)
        if slots is not None:  # freed when the answer arrives, even if nobody reads it
            future.add_callbacks(
                _release_slot, _release_slot, callback_args=(slots,), errback_args=(slots,)
            )
        return future

    def _finish(self, sent: Any) -> tuple[list[tuple[Any, ...]], bytes | None]:
        result = sent.result()
        rows = result.current_rows
        self.fn.pages_counter.inc()
        self.fn._limiter.acquire(len(rows))
        return rows, result.paging_state


def _release_slot(_result: Any, slots: threading.BoundedSemaphore) -> None:
    slots.release()


class _Sent:
    """A request already answered (or failed), as a future."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result = result
        self._error = error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


# --- cluster metadata (at pipeline construction) --------------------------------------------


class TableNotFound(LookupError):
    pass


@dataclass(frozen=True)
class TableDescription:
    keyspace: str
    table: str
    column_types: tuple[tuple[str, str, str], ...]
    user_types: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    release_version: str
    cluster_name: str


def describe_table(cluster: Any, session: Any, keyspace: str, table: str) -> TableDescription:
    """Columns in table order (partition key, clustering, the rest), UDTs, version."""
    from transforms.cql_types import user_type_table
    from transforms.table_plan import (
        CLUSTERING,
        PARTITION_KEY,
        REGULAR,
        STATIC,
        resolve_identifier,
    )

    keyspaces = cluster.metadata.keyspaces
    ks_name = resolve_identifier(keyspace, list(keyspaces))
    if ks_name is None:
        raise TableNotFound(
            f"keyspace {keyspace!r} does not exist; keyspaces: "
            + ", ".join(sorted(k for k in keyspaces if not k.startswith("system")))
        )
    ks_meta = keyspaces[ks_name]
    table_name = resolve_identifier(table, list(ks_meta.tables))
    if table_name is None:
        views = getattr(ks_meta, "views", {})
        if resolve_identifier(table, list(views)):
            raise TableNotFound(f"{ks_name}.{table} is a materialized view; export its base table")
        raise TableNotFound(
            f"table {table!r} does not exist in keyspace {ks_name}; tables: "
            + (", ".join(sorted(ks_meta.tables)) or "(none)")
        )
    meta = ks_meta.tables[table_name]
    pk = [c.name for c in meta.partition_key]
    ck = [c.name for c in meta.clustering_key]
    columns: list[tuple[str, str, str]] = []
    columns += [(n, meta.columns[n].cql_type, PARTITION_KEY) for n in pk]
    columns += [(n, meta.columns[n].cql_type, CLUSTERING) for n in ck]
    keys = set(pk) | set(ck)
    for name, column in meta.columns.items():
        if name in keys:
            continue
        columns.append((name, column.cql_type, STATIC if column.is_static else REGULAR))
    local = session.execute("SELECT release_version, cluster_name FROM system.local").one()
    return TableDescription(
        keyspace=ks_name,
        table=table_name,
        column_types=tuple(columns),
        user_types=user_type_table(ks_meta),
        release_version=str(local[0]),
        cluster_name=str(local[1]),
    )


def plan_described_table(described: TableDescription, **selection: Any) -> Any:
    """The TablePlan of a described table; ``selection`` holds build_table_plan's choices
    (columns, writetime_columns, ttl_columns, suffixes)."""
    from transforms.table_plan import build_table_plan

    return build_table_plan(
        keyspace=described.keyspace,
        table=described.table,
        column_types=described.column_types,
        user_types=described.user_types,
        release_version=described.release_version,
        cluster_name=described.cluster_name,
        **selection,
    )


def ring_tokens(cluster: Any) -> list[int]:
    token_map = cluster.metadata.token_map
    if token_map is None:
        return []
    return sorted(t.value for t in token_map.ring)


def partitions_per_range(session: Any, keyspace: str, table: str) -> dict[tuple[int, int], int]:
    """``system.size_estimates`` of the node we talk to (empty on a fresh node)."""
    try:
        rows = session.execute(
            "SELECT range_start, range_end, partitions_count FROM system.size_estimates "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    except Exception:
        return {}
    return {(int(r[0]), int(r[1])): int(r[2]) for r in rows}


# --- a reusable transform: rows as dicts ------------------------------------------------


class _BatchesToDictsFn(beam.DoFn):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def process(self, element: Any) -> Iterator[dict[str, Any]]:
        if isinstance(element, RowBatch):
            names = self.names
            for row in element.rows:
                yield dict(zip(names, row, strict=True))


class ReadCassandraWithWritetime(beam.PTransform):
    """Read a table as dicts with ``<col>_writetime`` (micros) and ``<col>_ttl`` keys.

    The table is described and the ring planned when the transform is applied;
    collections' per-element writetimes are normalized by ``collection_writetime``.
    """

    def __init__(
        self,
        *,
        connection: ConnectionConfig,
        keyspace: str,
        table: str,
        columns: str | Sequence[str] | None = None,
        writetime_columns: str | Sequence[str] | None = "*",
        ttl_columns: str | Sequence[str] | None = None,
        collection_writetime: str = "max",
        splits: int = 64,
        batch_size: int = 1000,
    ) -> None:
        super().__init__()
        if not keyspace or not table:
            raise ValueError("keyspace and table are required")
        if splits < 1:
            raise ValueError("splits must be at least 1")
        if collection_writetime not in ("max", "min", "list"):
            raise ValueError("collection_writetime must be max, min or list")
        self.connection = connection
        self.keyspace = keyspace
        self.table = table
        self.columns = columns
        self.writetime_columns = writetime_columns
        self.ttl_columns = ttl_columns
        self.collection_writetime = collection_writetime
        self.splits = splits
        self.batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from transforms.normalize import NormalizeWritetimes
        from transforms.token_ranges import make_work_units, plan_ranges

        cluster, session = connect(self.connection)
        try:
            described = describe_table(cluster, session, self.keyspace, self.table)
            tokens = ring_tokens(cluster)
            estimates = partitions_per_range(session, described.keyspace, described.table)
        finally:
            cluster.shutdown()
        plan = plan_described_table(
            described,
            columns=self.columns,
            writetime_columns=self.writetime_columns,
            ttl_columns=self.ttl_columns,
        )
        units = make_work_units(plan_ranges(tokens, self.splits, estimates))
        items = [(u.unit_id, u.start, u.start, u.end) for u in units]
        return (
            pbegin
            | "WorkUnits" >> beam.Create(items)
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadTokenRanges" >> beam.ParDo(ReadRangesFn(self.connection, plan, self.batch_size))
            | "NormalizeWritetimes" >> NormalizeWritetimes(plan, self.collection_writetime)
            | "ToDicts" >> beam.ParDo(_BatchesToDictsFn(plan.field_names))
        )

    def display_data(self) -> dict[str, Any]:
        return {
            "keyspace": self.keyspace,
            "table": self.table,
            "hosts": ",".join(self.connection.hosts),
            "writetime_columns": str(self.writetime_columns),
            "collection_writetime": self.collection_writetime,
        }
