"""describe_pid: what a message about a node that does not answer says of its process."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.backends.base import describe_pid
from harness.wait import wait_for


def test_describes_a_running_process() -> None:
    text = describe_pid(os.getpid())
    assert text.startswith(f"pid {os.getpid()} state R")  # it is running this very line
    assert "threads" in text and "cpu" in text


def test_a_stopped_process_shows_state_t() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.kill(proc.pid, 19)  # SIGSTOP
        wait_for(lambda: (" state T" in (d := describe_pid(proc.pid)), d), 5, "stopped state")
    finally:
        proc.kill()
        proc.wait()
    assert describe_pid(proc.pid) == f"pid {proc.pid} gone"
