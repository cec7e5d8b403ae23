"""pytest fixtures for a real JetStream server (re-exported by ``lss_dev.pytest_plugin``).

* ``nats_server``: a fresh server per test, store in ``tmp_path``; the test may ``kill()``,
  ``stop()`` and ``start()`` it again (same port, same store).
* ``nats_url``: one server for the whole session, or ``$LSS_TEST_NATS_URL`` when set (a NATS
  the developer already runs). Tests sharing it isolate themselves with their own stream
  names and subject prefix (see ``lss_common.testing``).

No fakes: anything claimed about NATS behaviour runs against ``nats-server``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lss_dev import natsserver

__all__ = ["nats_server", "nats_url"]

URL_ENV = "LSS_TEST_NATS_URL"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[natsserver.NatsServer]:
    """A JetStream server of this test's own, stopped (or killed) at the end."""
    server = natsserver.NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.stop(timeout_seconds=5.0)


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's JetStream server (``$LSS_TEST_NATS_URL`` wins)."""
    external = os.environ.get(URL_ENV)
    if external:
        yield external
        return
    server = natsserver.NatsServer(tmp_path_factory.mktemp("nats-session"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop(timeout_seconds=5.0)
