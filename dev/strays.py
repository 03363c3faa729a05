"""Kill processes a previous run recorded in pid files and left behind (local nodes, job
servers): shared by ``dev.cassandra_local`` and ``dev.runners``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil


def kill_recorded(
    pid_files: Iterable[Path],
    find: Callable[[int, Path], Any],
    spare: Callable[[Path], bool] = lambda directory: False,
) -> list[int]:
    """SIGKILL the process of each pid file, if ``find(pid, its directory)`` says it is
    still the recorded one (a psutil.Process; None for a recycled pid or a dead process)
    and ``spare(directory)`` does not keep it; the pid file of a killed or gone process is
    removed. Returns the pids killed."""
    killed: list[int] = []
    for pid_file in sorted(pid_files):
        directory = pid_file.parent
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        proc = find(pid, directory)
        if proc is not None and spare(directory):
            continue
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                proc.wait(timeout=30)
                killed.append(pid)
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return killed
