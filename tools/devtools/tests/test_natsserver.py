"""NatsServer against the real binary: ports, readiness, restart on the same port and store,
SIGKILL, detached daemons stopped by pid, and a clear error when the server cannot start."""

from __future__ import annotations

import pathlib
import socket

import nats
import pytest

from lss_dev import natsserver

pytestmark = pytest.mark.integration


async def stream_names(url: str) -> list[str]:
    client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        return [info.config.name or "" for info in await client.jetstream().streams_info()]
    finally:
        await client.close()


async def test_restart_on_same_port_keeps_the_store(nats_server: natsserver.NatsServer) -> None:
    url = nats_server.url
    client = await nats.connect(url)
    await client.jetstream().add_stream(name="KEEP", subjects=["keep.>"])
    await client.close()
    old_pid = nats_server.pid

    nats_server.kill()
    assert not nats_server.is_running()
    nats_server.start()

    assert nats_server.url == url
    assert nats_server.pid != old_pid
    assert await stream_names(url) == ["KEEP"]
    nats_server.stop()
    assert nats_server.pid is None


async def test_detached_server_is_stopped_by_pid(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "logs" / "nats.log"
    server = natsserver.NatsServer(tmp_path / "store", detach=True, log_file=log)
    server.start()
    pid = server.pid
    assert pid is not None
    try:
        assert await stream_names(server.url) == []
        assert "Server is ready" in log.read_text()
    finally:
        natsserver.terminate(pid, timeout_seconds=10)
    assert not natsserver.is_alive(pid)


def test_start_failure_reports_the_log(tmp_path: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = natsserver.NatsServer(tmp_path, port=port)
        with pytest.raises(natsserver.NatsServerError, match="exited"):
            server.start(timeout_seconds=20)
    assert server.pid is None


def test_binary_override(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    assert natsserver.find_binary().name == "nats-server"
    monkeypatch.setenv(natsserver.BINARY_ENV, str(tmp_path / "custom"))
    assert natsserver.find_binary() == tmp_path / "custom"
