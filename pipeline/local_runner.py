"""Console logging of the CLI: the local multi-process runner without Beam's chatter, and
one line per record unless ``--log-level DEBUG``.

:class:`QuietFnApiRunner` is Beam's FnApiRunner whose SDK worker processes start through
``pipeline.worker`` (the same worker, with no console handler of its own), and
:class:`WorkerLogFilter` turns the log records those workers forward to the runner back
into plain lines: ours shown as in a single-process run, Beam's own start-up and
shutdown records dropped (kept with ``--log-level DEBUG``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from google.protobuf import text_format

BEAM_WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"
QUIET_WORKER_MODULE = "pipeline.worker"
# The logger through which the local job service prints what workers forward.
FORWARDED_LOGGER = "apache_beam.runners.portability.local_job_service"
_FORWARDED_PREFIX = "Worker: "
_DRIVER_PATH = "-packages/cassandra/"  # the DataStax driver, in site- or dist-packages


def worker_command() -> str:
    return f"{sys.executable} -m {QUIET_WORKER_MODULE}"


class QuietFnApiRunner(FnApiRunner):
    """FnApiRunner whose subprocess SDK workers run ``pipeline.worker``."""

    def run_via_runner_api(self, pipeline_proto: Any, options: Any) -> Any:
        for environment in pipeline_proto.components.environments.values():
            if (
                environment.urn == python_urns.SUBPROCESS_SDK
                and BEAM_WORKER_MODULE.encode() in environment.payload
            ):
                environment.payload = worker_command().encode()
        return super().run_via_runner_api(pipeline_proto, options)


def _module_of(location: str) -> str:
    """'/path/transforms/cassandra_io.py:620' -> 'transforms.cassandra_io'."""
    path = location.rsplit(":", 1)[0].replace("\\", "/")
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[-2:]) if len(parts) >= 2 else (parts[0] or "worker")


class WorkerLogFilter(logging.Filter):
    """On the forwarding logger: a worker's record becomes its own message under its
    module's name. Unless ``keep_beam`` (``--log-level DEBUG``), records logged from inside
    Beam are dropped, and the driver's below WARNING, as in the runner's own process."""

    def __init__(self, keep_beam: bool = False) -> None:
        super().__init__()
        self.keep_beam = keep_beam

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith(_FORWARDED_PREFIX):
            return True
        entry = beam_fn_api_pb2.LogEntry()
        try:
            text_format.Parse(text[len(_FORWARDED_PREFIX) :], entry)
        except text_format.ParseError:
            return True
        location = entry.log_location.replace("\\", "/")
        if "/apache_beam/" in location or location.startswith("apache_beam"):
            return self.keep_beam
        if _DRIVER_PATH in location and record.levelno < logging.WARNING and not self.keep_beam:
            return False  # as in the runner's process: the driver says INFO only with DEBUG
        record.name = _module_of(location)
        trace = ("\n" + entry.trace) if entry.trace and self.keep_beam else ""
        record.msg = entry.message + trace  # the trace only with --log-level DEBUG
        record.args = None
        return True


class OneLineLogs(logging.Filter):
    """On the console handler, unless ``--log-level DEBUG``: a record logged with an
    exception (the driver does so for a node that drops its control connection while it
    reconnects) is printed as one line, the exception's own text at its end, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            text = record.getMessage().rstrip().rstrip(":")
            if error is not None:
                lines = str(error).strip().splitlines()
                detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
                text = f"{text}: {detail}"
            record.msg, record.args = text, None
            record.exc_info, record.exc_text = None, None
        if record.stack_info:
            record.stack_info = None
        return True


def install_worker_log_filter(level: int, keep_beam: bool) -> None:
    """Show forwarded worker records at ``level`` through :class:`WorkerLogFilter`."""
    forwarded = logging.getLogger(FORWARDED_LOGGER)
    for old in [f for f in forwarded.filters if isinstance(f, WorkerLogFilter)]:
        forwarded.removeFilter(old)
    forwarded.addFilter(WorkerLogFilter(keep_beam))
    forwarded.setLevel(level)
