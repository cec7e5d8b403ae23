"""The whole local platform: NATS JetStream plus the Kubernetes control plane.

``Platform.up()`` is idempotent: it starts only what is not running and re-checks the rest.
Ports are chosen once per state directory and kept, so a restarted platform keeps its
kubeconfig and NATS URL. The same class backs ``llmsafespace dev`` and the pytest fixtures.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from lss_dev import build, controlplane, natsserver, processes

NATS = "nats-server"
_PORT_ATTEMPTS = 3
_COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "etcd": ("etcd", "etcd_peer"),
    "kube-apiserver": ("apiserver",),
    "kwok": ("kwok",),
    NATS: ("nats", "nats_monitor"),
}
"""The ports.json entries each component binds (the controller manager and the scheduler
bind none of ours)."""


@dataclass
class Platform:
    state_dir: Path
    nodes: int = 3

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self._ports = self._load_ports()
        self._binaries: dict[str, Path] | None = None

    # -- addresses ---------------------------------------------------------------------

    def _load_ports(self) -> dict[str, int]:
        path = self.state_dir / "ports.json"
        if path.exists():
            ports: dict[str, int] = json.loads(path.read_text())
            return ports
        names = ("etcd", "etcd_peer", "apiserver", "kwok", "nats", "nats_monitor")
        ports = {name: controlplane.free_port() for name in names}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports))
        return ports

    def port(self, name: str) -> int:
        """A port of this platform (allocated once, kept in ports.json), e.g. a service's."""
        if name not in self._ports:
            self._ports[name] = controlplane.free_port()
            (self.state_dir / "ports.json").write_text(json.dumps(self._ports))
        return self._ports[name]

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self._ports['nats']}"

    @property
    def binaries(self) -> dict[str, Path]:
        if self._binaries is None:
            self._binaries = build.ensure_binaries()
        return self._binaries

    @property
    def control_plane(self) -> controlplane.ControlPlane:
        return controlplane.ControlPlane(
            state_dir=self.state_dir,
            binaries=self.binaries,
            etcd_port=self._ports["etcd"],
            etcd_peer_port=self._ports["etcd_peer"],
            apiserver_port=self._ports["apiserver"],
            kwok_port=self._ports["kwok"],
        )

    # -- lifecycle --------------------------------------------------------------------

    def up(self) -> None:
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self.start_nats()
                self.control_plane.start(nodes=self.nodes)
                self.wait_nats()
                return
            except controlplane.PortTaken as taken:
                if attempt + 1 == _PORT_ATTEMPTS:
                    raise
                # Another process bound the port between its choice and its use: give the
                # component new ports and start it again (its data and PKI are kept).
                processes.stop(taken.component, state_dir=self.state_dir)
                self._reallocate(_COMPONENT_PORTS[taken.component])

    def _reallocate(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._ports[name] = controlplane.free_port()
        (self.state_dir / "ports.json").write_text(json.dumps(self._ports))

    def down(self) -> None:
        self.control_plane.stop()
        processes.stop(NATS, state_dir=self.state_dir)

    def start_nats(self) -> None:
        if processes.pid_of(NATS, state_dir=self.state_dir) is not None:
            return
        store = self.state_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            str(natsserver.find_binary()),
            "--jetstream",
            f"--store_dir={store}",
            "--addr=127.0.0.1",
            f"--port={self._ports['nats']}",
            f"--http_port={self._ports['nats_monitor']}",
            "--server_name=lss-dev",
        ]
        processes.start(NATS, argv, state_dir=self.state_dir)

    def wait_nats(self, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self._ports['nats_monitor']}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if controlplane._http_ok(url):
                return
            if processes.pid_of(NATS, state_dir=self.state_dir) is None:
                log = processes.tail(NATS, state_dir=self.state_dir)
                ports = (self._ports["nats"], self._ports["nats_monitor"])
                if controlplane.port_taken(log, ports=ports):
                    raise controlplane.PortTaken(NATS, log)
                raise RuntimeError(
                    "nats-server exited; its log ends with:\n"
                    + processes.tail(NATS, state_dir=self.state_dir)
                )
            time.sleep(0.05)
        raise RuntimeError(f"nats-server JetStream not ready after {timeout}s")

    def status(self) -> dict[str, object]:
        pids: dict[str, int | None] = {NATS: processes.pid_of(NATS, state_dir=self.state_dir)}
        # Reading pid files only: status must not build binaries on a machine without them.
        pids.update({n: processes.pid_of(n, state_dir=self.state_dir) for n in controlplane.ORDER})
        return {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "nats_url": self.nats_url,
            "processes": pids,
            "nats_reachable": _port_open(self._ports["nats"]),
            "ready_nodes": self.control_plane.ready_nodes() if all(pids.values()) else 0,
        }

    def is_up(self) -> bool:
        state = self.status()
        procs = state["processes"]
        assert isinstance(procs, dict)
        return all(procs.values()) and bool(state["nats_reachable"])

    def env_lines(self) -> str:
        return f"export KUBECONFIG={self.kubeconfig}\nexport NATS_URL={self.nats_url}"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
