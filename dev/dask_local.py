"""A real Dask cluster on this machine: one ``dask scheduler`` and N ``dask worker``
processes on 127.0.0.1, for running the export with ``--runner dask`` (Beam's DaskRunner).

Workers import the project (``PYTHONPATH`` is set to this checkout, so they unpickle the
DoFns of ``transforms``); each runs one task at a time and has no nanny, so a worker's pid is
the process that runs its tasks (killing it takes its tasks away for good, and the scheduler
gives them to another worker). Every process records its pid in ``RUN_DIR/<name>.pid`` and
names ``RUN_DIR`` on its command line, so :func:`kill_strays` can find what a dead run left
behind without touching anyone else's Dask processes.

Command line::

    python -m dev.dask_local start [--workers 2] [--dir DIR]   # detached; prints the address
    python -m dev.dask_local status [--dir DIR]                # address and live pids
    python -m dev.dask_local stop [--dir DIR]                  # stop what start started
    python -m dev.dask_local kill-strays                       # SIGKILL leftovers of dead runs

Library use (tests)::

    with DaskCluster(run_dir, workers=2) as cluster:
        argv += cluster.pipeline_args()

Processes inherit the caller's environment, so the test run's ``CASSANDRA_EXPORT_TEST_RUN``
marker is on them too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from dev.runners import _die_with_parent_fn, _free_port
from dev.strays import kill_recorded

REPO_ROOT = Path(__file__).resolve().parent.parent
DASK_ROOT = REPO_ROOT / ".local" / "dask"
DEFAULT_DIR = DASK_ROOT / "cli"
TEST_PREFIX = "test-"  # run directories of test sessions: what kill_strays sweeps
HOST = "127.0.0.1"
START_TIMEOUT = 90.0


class DaskStartError(RuntimeError):
    """The scheduler or a worker did not come up (the message holds its log's tail)."""


def _dask_binary() -> str:
    """The ``dask`` command of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("dask")
    return str(candidate) if candidate.exists() else "dask"


def _dask_process(pid: int, run_dir: Path) -> psutil.Process | None:
    """The live process ``pid`` if it is a dask scheduler or worker of ``run_dir``."""
    try:
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.Error, OSError):
        return None
    if "dask" in cmdline and str(run_dir.resolve()) in cmdline:
        return proc
    return None


def _executing_tasks(dask_worker: Any) -> int:
    """Run on a worker by ``Client.run``: how many of its threads execute a task now."""
    return len(dask_worker.active_threads)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class DaskCluster:
    """A scheduler and ``workers`` worker processes, with their files under ``run_dir``."""

    def __init__(self, run_dir: Path = DEFAULT_DIR, workers: int = 2, threads: int = 1) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.workers = workers
        self.threads = threads
        self.port: int | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def scheduler_file(self) -> Path:
        return self.run_dir / "scheduler.json"

    @property
    def address(self) -> str:
        """``tcp://127.0.0.1:PORT`` of the scheduler (from its file when adopted)."""
        if self.port is None and self.scheduler_file.exists():
            return str(json.loads(self.scheduler_file.read_text())["address"])
        return f"tcp://{HOST}:{self.port}"

    def pipeline_args(self, npartitions: int | None = None) -> list[str]:
        """The export's Beam options for this cluster (``--dask_npartitions`` only if given:
        the launcher sets it from the work units otherwise)."""
        args = ["--runner=dask", f"--dask_client_address={self.address}"]
        args.append(f"--num_workers={self.workers}")
        if npartitions is not None:
            args.append(f"--dask_npartitions={npartitions}")
        return args

    def _spawn(self, name: str, command: list[str], detach: bool) -> int:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        try:
            proc = subprocess.Popen(
                command,
                cwd=self.run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if detach else _die_with_parent_fn(),
            )
        finally:
            log.close()
        self._procs[name] = proc
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc.pid

    def _worker_command(self, i: int) -> list[str]:
        return [
            _dask_binary(),
            "worker",
            self.address,
            "--host",
            HOST,
            "--name",
            f"worker-{i}",
            "--nthreads",
            str(self.threads),
            "--no-nanny",
            "--no-dashboard",
            "--local-directory",
            str(self.run_dir / f"worker-{i}"),
            "--death-timeout",
            "60",
        ]

    def start(self, *, detach: bool = False, timeout: float = START_TIMEOUT) -> DaskCluster:
        """Start the scheduler and the workers; return once every worker has registered.
        ``detach``: the processes outlive this Python process (the CLI's ``start``)."""
        if self.pids():
            raise DaskStartError(f"{self.run_dir} already runs a Dask cluster: stop it first")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        if not detach:  # kill_strays spares the cluster while this process lives
            (self.run_dir / "owner").write_text(_owner_token())
        self.port = _free_port()
        self._spawn(
            "scheduler",
            [_dask_binary(), "scheduler", "--host", HOST, "--port", str(self.port)]
            + ["--no-dashboard", "--scheduler-file", str(self.scheduler_file)],
            detach,
        )
        try:
            self._wait_file(time.monotonic() + timeout)
            for i in range(self.workers):
                self._spawn(f"worker-{i}", self._worker_command(i), detach)
            self.wait_workers(self.workers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_file(self, deadline: float) -> None:
        while not self.scheduler_file.exists():
            proc = self._procs["scheduler"]
            if proc.poll() is not None:
                raise DaskStartError(
                    f"dask scheduler exited with {proc.returncode}:\n"
                    + _tail(self.run_dir / "scheduler.log")
                )
            if time.monotonic() > deadline:
                raise DaskStartError("dask scheduler wrote no scheduler file in time")
            time.sleep(0.1)

    def info(self, timeout: float = 10.0) -> dict[str, Any]:
        """The scheduler's view: ``{"workers": {address: {...}}, ...}`` (one client call)."""
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            return dict(client.scheduler_info(n_workers=-1))

    def processing(self, timeout: float = 10.0) -> dict[str, int]:
        """Tasks each worker holds right now, by worker name: those the scheduler has handed
        it, or, if more, those its threads still execute. A task whose client died is
        forgotten by the scheduler at once, but its thread runs on until it returns."""
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            assigned = client.processing()
            executing = client.run(_executing_tasks)
            names = {a: w.get("name") for a, w in client.scheduler_info(-1)["workers"].items()}
        return {
            str(names.get(a, a)): max(len(assigned.get(a, ())), executing.get(a, 0)) for a in names
        }

    def wait_workers(self, count: int, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``count`` workers are registered with the scheduler."""
        from distributed import Client

        try:
            with Client(self.address, timeout=timeout, set_as_default=False) as client:
                client.wait_for_workers(count, timeout=timeout)
        except Exception as exc:
            logs = "\n".join(
                f"{p.name}: {_tail(p, 5)}" for p in sorted(self.run_dir.glob("worker-*.log"))
            )
            raise DaskStartError(
                f"{count} Dask workers did not register in {timeout:.0f} s ({exc}):\n{logs}"
            ) from None

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until no worker runs or holds a task (a killed client's tasks have ended)."""
        deadline = time.monotonic() + timeout
        while any(self.processing().values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Dask workers still busy after {timeout:.0f} s")
            time.sleep(0.5)

    def worker_pid(self, i: int) -> int | None:
        """The pid of worker ``i`` if it is alive."""
        return self._recorded_pid(f"worker-{i}")

    def _recorded_pid(self, name: str) -> int | None:
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _dask_process(pid, self.run_dir) is not None else None

    def pids(self) -> dict[str, int]:
        """Live processes of this cluster by name (scheduler, worker-0, ...)."""
        found = {}
        for pid_file in sorted(self.run_dir.glob("*.pid")):
            pid = self._recorded_pid(pid_file.stem)
            if pid is not None:
                found[pid_file.stem] = pid
        return found

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker ``i``; returns its pid once the process is gone."""
        pid = self.worker_pid(i)
        if pid is None:
            raise RuntimeError(f"worker-{i} is not running")
        proc = psutil.Process(pid)
        proc.kill()
        proc.wait(timeout=30)
        with contextlib.suppress(KeyError):
            self._procs.pop(f"worker-{i}").wait(timeout=5)
        return pid

    def start_worker(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """(Re)start worker ``i`` and wait until all workers are registered again."""
        self._spawn(f"worker-{i}", self._worker_command(i), detach=False)
        self.wait_workers(self.workers, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the workers, then the scheduler: SIGTERM, SIGKILL after ``timeout``; by pid."""
        names = sorted(self.pids(), key=lambda n: n == "scheduler")
        for name in names:
            pid = self._recorded_pid(name)
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            with contextlib.suppress(OSError):
                (self.run_dir / f"{name}.pid").unlink()
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # reap our children
        self._procs.clear()

    def __enter__(self) -> DaskCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _owner_token() -> str:
    """This process across pid reuse: "pid create_time"."""
    return f"{os.getpid()} {psutil.Process().create_time():.3f}"


def _owner_alive(run_dir: Path) -> bool:
    try:
        pid, created = (run_dir / "owner").read_text().split()
        return f"{psutil.Process(int(pid)).create_time():.3f}" == created
    except (OSError, ValueError, psutil.Error):
        return False


def session_run_dir(root: Path = DASK_ROOT) -> Path:
    """A run directory of this process for a test session's cluster."""
    return Path(root) / f"{TEST_PREFIX}{os.getpid()}"


def kill_strays(root: Path = DASK_ROOT) -> list[int]:
    """SIGKILL the Dask processes of test clusters (``root/test-*``) whose starting process
    has died; a pid is only killed if its command line is a dask process naming its run
    directory (a recycled pid is left alone). A cluster started with ``start`` (the CLI,
    ``root/cli``) is the user's: ``stop`` ends it."""
    return kill_recorded(
        Path(root).glob(f"{TEST_PREFIX}*/*.pid"),
        lambda pid, run_dir: _dask_process(pid, run_dir),
        spare=_owner_alive,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.dask_local", description=__doc__)
    parser.add_argument("command", choices=("start", "stop", "status", "kill-strays"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="run directory")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cluster = DaskCluster(args.dir, workers=args.workers)
    if args.command == "start":
        try:
            cluster.start(detach=True)
        except DaskStartError as exc:
            print(f"dask_local: {exc}", file=sys.stderr)
            return 1
        print(cluster.address)
        print("use: " + " ".join(cluster.pipeline_args()))
        return 0
    if args.command == "status":
        pids = cluster.pids()
        if not pids:
            print(f"no Dask cluster runs from {cluster.run_dir}")
            return 1
        print(cluster.address)
        for name, pid in pids.items():
            print(f"{name}: pid {pid}")
        return 0
    if args.command == "stop":
        cluster.stop()
        return 0
    for pid in kill_strays():
        print(f"killed stray Dask process {pid}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
