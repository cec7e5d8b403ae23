"""Starting, finding and stopping the platform's daemons by pid file.

Daemons run in their own session (so a terminal's Ctrl-C does not reach them), log to a file
in the state directory, and are recognised by pid *and* executable path, so a recycled pid is
never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def start(name: str, argv: list[str], *, state_dir: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached; record its pid in ``<state_dir>/pids/<name>``."""
    logs = state_dir / "logs"
    pids = state_dir / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=state_dir,
        )
    (pids / name).write_text(f"{proc.pid}\n{argv[0]}\n")
    # Until the child has exec'ed, /proc shows the forking interpreter; wait so that
    # pid_of() recognises the daemon from the first moment on.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        if _cmd0(proc.pid) == argv[0]:
            break
        time.sleep(0.005)
    return proc.pid


def _cmd0(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return None


def pid_of(name: str, *, state_dir: Path) -> int | None:
    """The pid of a running daemon started by :func:`start`, or None."""
    path = state_dir / "pids" / name
    try:
        pid_text, exe = path.read_text().splitlines()[:2]
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if status == "Z" or cmdline != exe:
        return None
    return pid


def stop(name: str, *, state_dir: Path, timeout_seconds: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_seconds``. True when something was stopped."""
    pid = pid_of(name, state_dir=state_dir)
    (state_dir / "pids" / name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    return True


def kill(name: str, *, state_dir: Path) -> None:
    """SIGKILL (for tests that simulate a crash); the pid file stays for a restart."""
    pid = pid_of(name, state_dir=state_dir)
    if pid is not None:
        _signal(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.02)


@contextlib.contextmanager
def paused(name: str, *, state_dir: Path) -> Iterator[None]:
    """SIGSTOP the process until the block ends, then SIGCONT: for tests of what happens
    while a component does nothing (not dead: its connections and state stay)."""
    pid = pid_of(name, state_dir=state_dir)
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    _signal(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        _signal(pid, signal.SIGCONT)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    if state == "Z":
        # Our own child that exited: reap it so it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def tail(name: str, *, state_dir: Path, lines: int = 30) -> str:
    path = state_dir / "logs" / f"{name}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
