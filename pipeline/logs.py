"""Logging of one CLI run: the level, one line per record unless DEBUG, and Beam's and
the driver's own chatter kept out of the console."""

from __future__ import annotations

import logging
import os
import sys

from pipeline.local_runner import OneLineLogs, install_worker_log_filter


def setup_logging(level: str) -> None:
    """Configure the root logger for ``--log-level level`` (a logging level name).

    Below DEBUG every record is one line (an exception's text, no traceback) and Beam's
    and the driver's INFO records are hidden. Beam logs a failing DoFn with its traceback
    (apache_beam.runners.common, ERROR) before the runner re-raises it; the CLI reports
    that failure as one line. The traceback shows with DEBUG or CASSANDRA_EXPORT_DEBUG.
    """
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if level != "DEBUG":
        for noisy in ("apache_beam", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet = level != "DEBUG" and not os.environ.get("CASSANDRA_EXPORT_DEBUG")
    logging.getLogger("apache_beam.runners.common").setLevel(
        logging.CRITICAL if quiet else logging.NOTSET
    )
    install_worker_log_filter(getattr(logging, level), keep_beam=not quiet)
    if quiet:
        for handler in logging.getLogger().handlers:
            handler.addFilter(OneLineLogs())
