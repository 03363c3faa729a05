"""Beam runners on this machine, without Docker: Prism and the Flink job server, fetched once
into a cache and started as local processes; and the Dataflow Flex template's metadata.json,
generated from the one option table so that it cannot drift.

Command line::

    python -m dev.runners prism-path                 # go install prism once, print its path
    python -m dev.runners flink-jar                  # fetch the Flink job server jar once
    python -m dev.runners flink-start [--job-port P] # start it detached, print the endpoint
    python -m dev.runners flink-stop                 # stop the job servers flink-start started
    python -m dev.runners kill-strays                # SIGKILL job servers left by dead runs
    python -m dev.runners write-metadata [--check]   # metadata.json from pipeline/options.py

Library use (tests)::

    with FlinkJobServer() as server:
        argv += server.pipeline_args(parallelism=2)

Environment: ``CASSANDRA_EXPORT_CACHE`` (cache root, default ``~/.cache/cassandra-export``),
``BEAM_FLINK_JOB_SERVER_JAR`` (use this jar, fetch nothing), ``PRISM_LOCATION`` (use this prism
binary, build nothing), ``FLINK_JAVA`` (the java binary; default JDK 17).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
METADATA_PATH = REPO_ROOT / "metadata.json"

FLINK_GROUP = "org.apache.beam"
FLINK_ARTIFACT = "beam-runners-flink-1.20-job-server"
FLINK_MAIN_MARKER = "beam-runners-flink"  # every job server command line names its jar
JAVA17 = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
# Flink's job server needs these on JDK 17 (its Kryo and memory code reflect into java.base).
FLINK_JVM_FLAGS = (
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
)
# Earlier Beam minor releases tried when the SDK's own job server is not served.
FLINK_VERSION_FALLBACKS = 3
# A version that did not resolve is not asked for again for this long (tests stay fast).
UNAVAILABLE_RETRY_SECONDS = 24 * 3600
PRISM_PACKAGE = "github.com/apache/beam/sdks/v2/go/cmd/prism"


class RunnerUnavailable(RuntimeError):
    """A runner's binary cannot be had on this machine (not served, no toolchain...)."""


def cache_root() -> Path:
    env = os.environ.get("CASSANDRA_EXPORT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cassandra-export"


def beam_version() -> str:
    """The Python SDK's version: the job server and Prism must match it."""
    import apache_beam

    return apache_beam.__version__


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- Prism


def prism_binary(version: str | None = None) -> Path:
    """The Prism binary of ``version`` (default: the SDK's), built once with ``go install``.

    The Go module proxy serves Beam's Go module, so Prism is built from source into
    ``<cache>/prism/v<version>/prism``; a ``.complete`` marker makes later calls instant.
    """
    override = os.environ.get("PRISM_LOCATION")
    if override:
        return Path(override)
    version = version or beam_version()
    target_dir = cache_root() / "prism" / f"v{version}"
    binary = target_dir / "prism"
    if (target_dir / ".complete").exists() and binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise RunnerUnavailable("Prism is built with Go: no 'go' on PATH (or set PRISM_LOCATION)")
    with _file_lock(target_dir.parent / f".v{version}.lock"):
        if (target_dir / ".complete").exists() and binary.exists():
            return binary
        partial = target_dir / ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        env = dict(os.environ, GOBIN=str(partial))
        cmd = [go, "install", f"{PRISM_PACKAGE}@v{version}"]
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=1800, check=False
            )
        except subprocess.TimeoutExpired:
            raise RunnerUnavailable(f"{' '.join(cmd)} took more than 1800 s") from None
        built = partial / "prism"
        if proc.returncode != 0 or not built.exists():
            raise RunnerUnavailable(f"{' '.join(cmd)} failed:\n{_tail(proc.stdout + proc.stderr)}")
        built.replace(binary)
        shutil.rmtree(partial, ignore_errors=True)
        (target_dir / ".complete").write_text(f"{version}\n{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return binary


def prism_pipeline_args(prism: Path | None = None) -> list[str]:
    """Beam options for a Prism run: the SDK starts the binary; workers run in LOOPBACK."""
    return [
        "--runner=PrismRunner",
        f"--prism_location={prism or prism_binary()}",
        "--environment_type=LOOPBACK",
        "--prism_log_level=warn",
    ]


# --------------------------------------------------------------------------- Flink job server


def _earlier_minors(version: str, count: int) -> list[str]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        return []
    major, minor = int(m.group(1)), int(m.group(2))
    return [f"{major}.{n}.0" for n in range(minor - 1, max(-1, minor - 1 - count), -1)]


def _fetch_with_maven(version: str, target_dir: Path) -> tuple[Path | None, str]:
    """``mvn dependency:copy`` of the job server jar into ``target_dir``; (jar, output tail)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return None, "mvn not found on PATH"
    partial = target_dir / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = dict(os.environ)
    if Path(JAVA17).exists():
        env["JAVA_HOME"] = str(Path(JAVA17).parent.parent)
    cmd = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={FLINK_GROUP}:{FLINK_ARTIFACT}:{version}",
        f"-DoutputDirectory={partial}",
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=partial, env=env, capture_output=True, text=True, timeout=1800, check=False
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(partial, ignore_errors=True)
        return None, "mvn timed out after 1800 s"
    jar_name = f"{FLINK_ARTIFACT}-{version}.jar"
    if proc.returncode != 0 or not (partial / jar_name).exists():
        shutil.rmtree(partial, ignore_errors=True)
        output = proc.stdout + proc.stderr
        output = re.sub(r"\x1b\[[0-9;]*m", "", output)
        failed = re.search(r"Failed to execute goal [^:]+:[^:]+:[^:]+:\S+ [^:]*: ([^\n]+)", output)
        return None, failed.group(1).split(" during a previous")[0][:300] if failed else _tail(
            output
        )
    jar = target_dir / jar_name
    (partial / jar_name).replace(jar)
    shutil.rmtree(partial, ignore_errors=True)
    (target_dir / ".complete").write_text(f"{version}\n{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return jar, ""


def flink_job_server_jar(version: str | None = None, *, retry_unavailable: bool = False) -> Path:
    """The Flink 1.20 job server jar for ``version`` (default: the SDK's), fetched once.

    Cached in ``<cache>/flink/<version>/`` with a ``.complete`` marker; a file lock keeps
    two processes from fetching at once. When ``version`` is not served, up to
    ``FLINK_VERSION_FALLBACKS`` earlier minor releases are tried and the newest that resolves
    is used (``.resolved-version`` records it; a warning names the mismatch). When none
    resolves, that answer is remembered for a day (``.unavailable``) and RunnerUnavailable
    is raised at once on later calls, unless ``retry_unavailable``.
    """
    override = os.environ.get("BEAM_FLINK_JOB_SERVER_JAR")
    if override:
        if not Path(override).is_file():
            raise RunnerUnavailable(f"BEAM_FLINK_JOB_SERVER_JAR={override} is not a file")
        return Path(override)
    version = version or beam_version()
    root = cache_root() / "flink"
    requested = root / version

    def cached() -> Path | None:
        for candidate in (requested, _resolved_dir(root, requested)):
            if candidate is None or not (candidate / ".complete").exists():
                continue
            jars = sorted(candidate.glob(f"{FLINK_ARTIFACT}-*.jar"))
            if jars:
                return jars[0]
        return None

    def known_unavailable() -> str | None:
        marker = requested / ".unavailable"
        if retry_unavailable or not marker.exists():
            return None
        if time.time() - marker.stat().st_mtime > UNAVAILABLE_RETRY_SECONDS:
            return None
        return marker.read_text()

    found = cached()
    if found is not None:
        return found
    reason = known_unavailable()
    if reason:
        raise RunnerUnavailable(reason)
    with _file_lock(root / ".fetch.lock"):
        found = cached()
        if found is not None:
            return found
        reason = known_unavailable()
        if reason:
            raise RunnerUnavailable(reason)
        errors = []
        for candidate in [version, *_earlier_minors(version, FLINK_VERSION_FALLBACKS)]:
            target = root / candidate
            target.mkdir(parents=True, exist_ok=True)
            jar, error = _fetch_with_maven(candidate, target)
            if jar is None:
                errors.append(f"{candidate}: {error}")
                continue
            if candidate != version:
                (requested / ".resolved-version").write_text(candidate + "\n")
                print(
                    f"warning: {FLINK_ARTIFACT}:{version} is not served; using {candidate}, "
                    f"which is older than the Python SDK ({version})",
                    file=sys.stderr,
                )
            with contextlib.suppress(OSError):
                (requested / ".unavailable").unlink()
            return jar
        message = (
            f"the Flink job server {FLINK_GROUP}:{FLINK_ARTIFACT} is not served by the Maven "
            f"registry for {version} nor for the earlier releases tried "
            f"({'; '.join(errors)}); set BEAM_FLINK_JOB_SERVER_JAR to a jar fetched elsewhere"
        )
        requested.mkdir(parents=True, exist_ok=True)
        (requested / ".unavailable").write_text(message)
        raise RunnerUnavailable(message)


def _resolved_dir(root: Path, requested: Path) -> Path | None:
    pointer = requested / ".resolved-version"
    if pointer.exists():
        return root / pointer.read_text().strip()
    return None


def flink_java() -> str:
    """JDK 17 by full path (the job server is not tested on newer JDKs); FLINK_JAVA overrides."""
    env = os.environ.get("FLINK_JAVA")
    if env:
        return env
    if Path(JAVA17).exists():
        return JAVA17
    for home in sorted(Path("/usr/lib/jvm").glob("*17*")):
        if (home / "bin" / "java").exists():
            return str(home / "bin" / "java")
    raise RunnerUnavailable("no JDK 17 found for the Flink job server: set FLINK_JAVA")


_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no dlopen in the child
_PR_SET_PDEATHSIG = 1


def _die_with_parent_fn() -> Any:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies (Linux)."""
    if _LIBC is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=timeout):
            return True
    except OSError:
        return False


def _job_server_process(pid: int, run_dir: Path) -> psutil.Process | None:
    """The live process ``pid`` if it is a job server started in ``run_dir`` (not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = " ".join(proc.cmdline())
        cwd = proc.cwd()
    except (psutil.Error, OSError):
        return None
    if FLINK_MAIN_MARKER in cmdline and Path(cwd).resolve() == run_dir.resolve():
        return proc
    return None


def flink_run_root() -> Path:
    return cache_root() / "flink" / "run"


def kill_strays(run_root: Path | None = None) -> list[int]:
    """SIGKILL every job server recorded in ``run_root/*/pid``; returns the pids killed.

    A pid is killed only if its command line names the job server jar and its working
    directory is that run directory, so a recycled pid is left alone.
    """
    from dev.strays import kill_recorded

    run_root = Path(run_root or flink_run_root())
    return kill_recorded(run_root.glob("*/pid"), _job_server_process)


_LIVE_SERVERS: weakref.WeakSet[FlinkJobServer] = weakref.WeakSet()
_ATEXIT_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def _stop_all_at_exit() -> None:
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(timeout=10)


class FlinkJobServer:
    """Beam's Flink job server with an embedded local Flink (``--flink-master [local]``).

    Started as a child process (it gets SIGKILL if this process dies, is stopped at
    interpreter exit, and leaves a pid file that ``kill_strays`` uses after a crash).
    """

    def __init__(
        self,
        *,
        jar: Path | None = None,
        job_port: int = 0,
        flink_master: str = "[local]",
        run_root: Path | None = None,
        java: str | None = None,
        jvm_args: tuple[str, ...] = (),
        startup_timeout: float = 180.0,
    ) -> None:
        self.jar = Path(jar) if jar else None
        self.job_port = job_port
        self.flink_master = flink_master
        self.run_root = Path(run_root or flink_run_root())
        self.java = java
        self.jvm_args = tuple(jvm_args)
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.job_port}"

    @property
    def run_dir(self) -> Path:
        return self.run_root / str(self.job_port)

    def pipeline_args(self, parallelism: int = 2) -> list[str]:
        """Beam options that run a pipeline on this job server, workers in LOOPBACK."""
        return [
            "--runner=PortableRunner",
            f"--job_endpoint={self.endpoint}",
            "--environment_type=LOOPBACK",
            f"--parallelism={parallelism}",
        ]

    def command(self) -> list[str]:
        assert self.jar is not None
        return [
            self.java or flink_java(),
            *FLINK_JVM_FLAGS,
            *self.jvm_args,
            "-jar",
            str(self.jar),
            "--flink-master",
            self.flink_master,
            "--job-port",
            str(self.job_port),
            "--artifact-port",
            "0",
            "--expansion-port",
            "0",
        ]

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _job_server_process(self._pid, self.run_dir) is not None

    def start(self, *, detach: bool = False) -> FlinkJobServer:
        """Start and wait until the job port accepts; raises RunnerUnavailable on failure."""
        if self.is_running():
            return self
        if self.jar is None:
            self.jar = flink_job_server_jar()
        if not self.job_port:
            self.job_port = _free_port()
        run_dir = self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        (run_dir / "command.txt").write_text(" ".join(cmd) + "\n")
        started = time.monotonic()
        preexec = None if detach else _die_with_parent_fn()
        with open(run_dir / "stdout.log", "ab") as out, open(run_dir / "stderr.log", "ab") as err:
            self._proc = subprocess.Popen(
                cmd,
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=preexec,
            )
        self._pid = self._proc.pid
        (run_dir / "pid").write_text(f"{self._proc.pid}\n")
        if not detach:
            _register_atexit(self)
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._forget()
                raise RunnerUnavailable(
                    f"the Flink job server exited with code {code} during startup:\n"
                    + self.log_tail()
                )
            if _port_open(self.job_port):
                self.startup_seconds = time.monotonic() - started
                return self
            time.sleep(0.25)
        self.stop(timeout=5)
        raise RunnerUnavailable(
            f"the Flink job server did not open port {self.job_port} within "
            f"{self.startup_timeout:.0f} s:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 30) -> str:
        texts = []
        for name in ("stdout.log", "stderr.log"):
            path = self.run_dir / name
            if path.exists():
                texts.append(_tail(path.read_text(errors="replace"), lines))
        return "\n".join(t for t in texts if t)

    def cancel_jobs(self, timeout: float = 30.0) -> list[str]:
        """Cancel every job the server still runs (after its client was killed); job ids."""
        return cancel_jobs(self.endpoint, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; removes the pid file."""
        if self._proc is not None:  # ours: signal its whole process group (the JVM's own)
            pgid = self._proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self._proc.wait(timeout=30)
        elif self._pid is not None:  # adopted from a pid file
            proc = _job_server_process(self._pid, self.run_dir)
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
                    try:
                        proc.wait(timeout=timeout)
                    except psutil.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=30)
        self._forget()

    def restart(self) -> FlinkJobServer:
        """Stop (cancelling whatever ran) and start again on the same port."""
        self.stop()
        return self.start()

    def _forget(self) -> None:
        with contextlib.suppress(OSError):
            (self.run_dir / "pid").unlink()
        self._proc = None
        self._pid = None
        _LIVE_SERVERS.discard(self)

    @classmethod
    def adopt(cls, run_dir: Path) -> FlinkJobServer | None:
        """The running server recorded in ``run_dir`` (started detached by another process)."""
        try:
            pid = int((run_dir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None
        if _job_server_process(pid, run_dir) is None:
            return None
        server = cls(job_port=int(run_dir.name), run_root=run_dir.parent)
        server._pid = pid
        return server

    def __enter__(self) -> FlinkJobServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _register_atexit(server: FlinkJobServer) -> None:
    global _ATEXIT_REGISTERED
    with _ATEXIT_LOCK:
        if not _ATEXIT_REGISTERED:
            atexit.register(_stop_all_at_exit)
            _ATEXIT_REGISTERED = True
        _LIVE_SERVERS.add(server)


_FINISHED_JOB_STATES = ("DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED")


def job_states(endpoint: str, timeout: float = 30.0) -> dict[str, str]:
    """Job id -> state name (RUNNING, CANCELLED...) of every job the job service at
    ``endpoint`` knows (Flink's job server, a standalone Prism...)."""
    import grpc
    from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
        jobs = stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=timeout)
    return {job.job_id: beam_job_api_pb2.JobState.Enum.Name(job.state) for job in jobs.job_info}


def cancel_jobs(endpoint: str, timeout: float = 30.0) -> list[str]:
    """Cancel every unfinished job of the job service at ``endpoint``; their ids."""
    import grpc
    from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

    unfinished = [
        job_id
        for job_id, state in job_states(endpoint, timeout).items()
        if state not in _FINISHED_JOB_STATES
    ]
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
        for job_id in unfinished:
            stub.Cancel(beam_job_api_pb2.CancelJobRequest(job_id=job_id), timeout=timeout)
    return unfinished


def wait_jobs_finished(endpoint: str, timeout: float = 60.0) -> dict[str, str]:
    """Poll until every job of the service at ``endpoint`` is finished; their states."""
    deadline = time.monotonic() + timeout
    while True:
        states = job_states(endpoint)
        if all(s in _FINISHED_JOB_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still running at {endpoint} after {timeout:.0f} s: {states}")
        time.sleep(0.5)


def kill_process_tree(pid: int, timeout: float = 30.0, *, reap_root: bool = True) -> list[int]:
    """SIGKILL ``pid`` and every process it started (a killed CLI leaves e.g. Prism behind).

    With ``reap_root=False`` the caller reaps ``pid`` itself (a ``Popen`` that must still
    see the exit status: reaping it here would make ``Popen.wait()`` report 0).
    """
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(family if reap_root else family[1:], timeout=timeout)
    return [p.pid for p in family]


# --------------------------------------------------------------------------- Flex template

# Options an export cannot start without (a resume reads everything else from the manifest).
REQUIRED_OPTIONS = ("table", "output")

_TYPE_REGEXES = {
    "positive_int": r"^[1-9][0-9]*$",
    "non_negative_int": r"^[0-9]+$",
    "non_negative_float": r"^[0-9]+(\.[0-9]*)?$",
    "positive_float": r"^(0*[1-9][0-9]*(\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*)$",
}
_BOOL_REGEX = r"^(true|false|True|False|TRUE|FALSE|yes|no|1|0|on|off)$"


def _parameter_regex(spec: Any) -> str | None:
    if spec.regex:
        return spec.regex
    if spec.choices:
        return "^(" + "|".join(re.escape(c) for c in spec.choices) + ")$"
    if spec.flag:
        return _BOOL_REGEX
    return _TYPE_REGEXES.get(getattr(spec.type, "__name__", ""))


def _label(spec: Any) -> str:
    words = spec.name.replace("-", " ")
    words = re.sub(r"\bttl\b", "TTL", words)
    words = re.sub(r"\bssl\b", "TLS", words)
    words = re.sub(r"\bdc\b", "DC", words)
    words = re.sub(r"\bca\b", "CA", words)
    return words[:1].upper() + words[1:]


def _help_text(spec: Any) -> str:
    from pipeline.option_spec import describe_type

    text = spec.help[:1].upper() + spec.help[1:]
    if spec.flag:
        text += " (true or false; default false)"
    elif spec.default not in (None, ""):
        text += f" (default: {spec.default})"
    elif spec.type is not str or spec.choices:
        text += f" ({describe_type(spec)})"
    if spec.optional_value:
        text += "; in a template give the output path"
    return text + "."


def flex_template_metadata() -> dict[str, Any]:
    """The Flex template metadata: one parameter per export option, by its underscore name."""
    from pipeline.options import OPTION_SPECS

    parameters = []
    for spec in OPTION_SPECS:
        parameter: dict[str, Any] = {
            "name": spec.dest,
            "label": _label(spec),
            "helpText": _help_text(spec),
            "isOptional": spec.dest not in REQUIRED_OPTIONS,
        }
        regex = _parameter_regex(spec)
        if regex:
            parameter["regexes"] = [regex]
        parameters.append(parameter)
    return {
        "name": "cassandra-export",
        "description": (
            "Export a Cassandra table with the WRITETIME and TTL of every cell to CSV, JSON "
            "lines, JSON or Avro files; resumable from the manifest in the output directory."
        ),
        "streaming": False,
        "supportsAtLeastOnce": False,
        "supportsExactlyOnce": True,
        "parameters": parameters,
    }


def render_metadata() -> str:
    return json.dumps(flex_template_metadata(), indent=2, ensure_ascii=False) + "\n"


def write_metadata(path: Path = METADATA_PATH, *, check: bool = False) -> bool:
    """Write metadata.json (or with ``check`` only compare); True when it was up to date."""
    text = render_metadata()
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return True
    if not check:
        path.write_text(text, encoding="utf-8")
    return False


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.runners", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prism-path", help="build Prism once (go install), print its path")
    sub.add_parser("flink-jar", help="fetch the Flink job server jar once, print its path")
    start = sub.add_parser("flink-start", help="start a Flink job server, detached")
    start.add_argument("--job-port", type=int, default=8099)
    sub.add_parser("flink-stop", help="stop the Flink job servers started by flink-start")
    sub.add_parser("kill-strays", help="SIGKILL job servers left behind by dead processes")
    meta = sub.add_parser("write-metadata", help="write metadata.json from pipeline/options.py")
    meta.add_argument("--check", action="store_true", help="only check that it is up to date")
    meta.add_argument("--path", type=Path, default=METADATA_PATH)
    args = parser.parse_args(argv)
    try:
        if args.command == "prism-path":
            print(prism_binary())
        elif args.command == "flink-jar":
            print(flink_job_server_jar(retry_unavailable=True))
        elif args.command == "flink-start":
            server = FlinkJobServer(job_port=args.job_port).start(detach=True)
            print(f"Flink job server at {server.endpoint} (pid file {server.run_dir / 'pid'})")
        elif args.command == "flink-stop":
            for run_dir in sorted(flink_run_root().glob("*")):
                server = FlinkJobServer.adopt(run_dir)
                if server is not None:
                    server.stop()
                    print(f"stopped the job server on port {run_dir.name}")
        elif args.command == "kill-strays":
            killed = kill_strays()
            print(f"killed {len(killed)} job server(s)" + (f": {killed}" if killed else ""))
        elif args.command == "write-metadata":
            fresh = write_metadata(args.path, check=args.check)
            if args.check and not fresh:
                print(f"{args.path} is out of date: run python -m dev.runners write-metadata")
                return 1
            print(f"{args.path} {'is up to date' if fresh else 'written'}")
    except RunnerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
