"""byoc.training.run_child: a user's script as a first-class process (real child processes, real signals)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from byoc.training import Stopped, run_child, stop_signal

TRAPS_SIGTERM = """
import os, signal, sys, time
def stop(signum, frame):
    open(os.path.join(sys.argv[1], "got-sigterm"), "w").write("yes")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(sys.argv[1], "ready"), "w").close()
time.sleep(60)
"""

IGNORES_SIGTERM = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(sys.argv[1], "ready"), "w").close()
time.sleep(60)
"""


def _stop_when_ready(folder, signum=signal.SIGTERM) -> threading.Thread:
    """Signal this (the job's) process once the child says it is ready, as `docker stop` signals PID 1."""
    def send():
        deadline = time.monotonic() + 20
        while not (folder / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def _run(tmp_path, source: str, lines: list | None = None) -> int:
    script = tmp_path / "script.py"
    script.write_text(source)
    return run_child([sys.executable, str(script), str(tmp_path)], "script.py",
                     (lines if lines is not None else []).append)


def test_sigterm_is_forwarded_and_how_the_script_exited_is_reported(tmp_path):
    with stop_signal.installed():
        sender = _stop_when_ready(tmp_path)
        with pytest.raises(Stopped) as stopped:
            _run(tmp_path, TRAPS_SIGTERM)
        sender.join()
    assert (tmp_path / "got-sigterm").read_text() == "yes"
    assert stopped.value.exit_code == 143
    assert "stopped by SIGTERM (forwarded to script.py, which exited with code 3;" in str(stopped.value)


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOC_STOP_GRACE_SECONDS", "0.5")
    started = time.monotonic()
    with stop_signal.installed():
        sender = _stop_when_ready(tmp_path)
        with pytest.raises(Stopped) as stopped:
            _run(tmp_path, IGNORES_SIGTERM)
        sender.join()
    assert "which did not exit within 0.5 s and was killed" in str(stopped.value)
    assert time.monotonic() - started < 10  # not the script's 60 s


def test_stderr_bytes_are_passed_on_line_by_line_whatever_their_encoding(tmp_path):
    lines: list[bytes] = []
    code = _run(tmp_path, "import sys\nsys.stderr.buffer.write(b'caf\\xe9\\n\\xff\\xfe\\nlast')\nsys.exit(4)", lines)
    assert code == 4
    assert lines == [b"caf\xe9\n", b"\xff\xfe\n", b"last"]


def test_what_the_script_leaves_running_in_its_group_is_stopped(tmp_path):
    source = "import subprocess, sys\np = subprocess.Popen(['sleep', '60'])\nopen(sys.argv[1] + '/pid', 'w').write(str(p.pid))"
    assert _run(tmp_path, source) == 0
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and \
            open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_bad_grace_period_is_named(tmp_path, monkeypatch):
    from byoc.errors import UserError

    monkeypatch.setenv("BYOC_STOP_GRACE_SECONDS", "soon")
    with pytest.raises(UserError, match="BYOC_STOP_GRACE_SECONDS='soon'"):
        _run(tmp_path, "pass")
