"""The run marker finds what a test run left behind, even re-parented to init, and kills it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from dev import strays


def test_a_marked_orphan_is_found_and_killed() -> None:
    marker = f"orphan-test-{time.time_ns()}"
    env = {**os.environ, strays.RUN_MARKER: marker}
    # The shell starts a sleeper in the background and exits at once: the sleeper is an
    # orphan, adopted by init, as a job server is when its parent dies without stopping it.
    script = (
        "import subprocess; subprocess.Popen(['sleep', '300'], stdin=subprocess.DEVNULL, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    found = strays.marked_processes(marker)
    assert [p.cmdline() for p in found] == [["sleep", "300"]]
    assert found[0].ppid() != os.getpid()
    killed = strays.kill_marked(marker)
    assert killed == [f"{found[0].pid} sleep 300"]
    assert strays.marked_processes(marker) == []


def test_other_markers_and_unmarked_processes_are_left_alone() -> None:
    marker = f"mine-{time.time_ns()}"
    other = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, strays.RUN_MARKER: f"theirs-{time.time_ns()}"}
    )
    plain = subprocess.Popen(["sleep", "300"], env={"PATH": os.environ["PATH"]})
    try:
        assert strays.kill_marked(marker) == []
        assert other.poll() is None and plain.poll() is None
    finally:
        for proc in (other, plain):
            proc.kill()
            proc.wait()
