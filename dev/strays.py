"""Kill processes a previous run recorded in pid files and left behind (local nodes, job
servers): shared by ``dev.cassandra_local`` and ``dev.runners``."""

from __future__ import annotations

import contextlib
import os
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


# Set (by the test session) in the environment of every process a run starts; children
# inherit it, so what outlives the run can be found even after it was re-parented to init.
RUN_MARKER = "CASSANDRA_EXPORT_TEST_RUN"


def marked_processes(value: str, exclude: set[int] | frozenset[int] = frozenset()) -> list[Any]:
    """Live processes whose environment has ``RUN_MARKER=value`` (zombies left out)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(RUN_MARKER) == value:
                found.append(proc)
    return found


def kill_marked(value: str, exclude: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """SIGKILL the processes :func:`marked_processes` finds; returns "pid command" for each."""
    killed = []
    for proc in marked_processes(value, exclude):
        with contextlib.suppress(psutil.Error, OSError):
            described = f"{proc.pid} {' '.join(proc.cmdline())[:120]}"
            proc.kill()
            proc.wait(timeout=30)
            killed.append(described)
    return killed


def main(argv: list[str] | None = None) -> int:
    """``python -m dev.strays kill-marked VALUE``: kill what a run left; exit 1 if anything."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "kill-marked":
        print("usage: python -m dev.strays kill-marked VALUE", file=sys.stderr)
        return 2
    killed = kill_marked(args[1], exclude={os.getpid(), os.getppid()})  # carries it too
    for described in killed:
        print(f"killed a process the test run left behind: {described}", file=sys.stderr)
    return 1 if killed else 0


if __name__ == "__main__":
    raise SystemExit(main())
