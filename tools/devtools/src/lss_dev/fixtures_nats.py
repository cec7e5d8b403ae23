"""pytest fixtures for a real JetStream server (re-exported by ``lss_dev.pytest_plugin``).

* ``nats_server``: a fresh server per test, store in ``tmp_path``; the test may ``kill()``,
  ``stop()`` and ``start()`` it again (same port, same store).
* ``nats_url``: one server for the whole session, or ``$LSS_TEST_NATS_URL`` when set (a NATS
  the developer already runs). Tests sharing it isolate themselves with their own stream
  names and subject prefix (see ``lss_common.testing``).
* ``secured_nats``: a server per test module running exactly ``deploy/nats/authorization.conf``
  (a user per service), with each user's password.

No fakes: anything claimed about NATS behaviour runs against ``nats-server``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lss_dev import natsserver, paths

__all__ = ["NATS_USERS", "SecuredNats", "nats_server", "nats_url", "secured_nats"]

#: The users of deploy/nats/authorization.conf.
NATS_USERS = ("watcher", "sandbox-reconciler", "pool-manager", "api", "setup")

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


@dataclasses.dataclass(frozen=True)
class SecuredNats:
    url: str
    passwords: dict[str, str]
    log_file: Path


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNats]:
    """nats-server with the shipped authorization file, and each user's password."""
    directory = tmp_path_factory.mktemp("nats-auth")
    shutil.copy(paths.repo_root() / "deploy" / "nats" / "authorization.conf", directory)
    config = directory / "nats.conf"
    config.write_text("include ./authorization.conf\n")
    passwords = {user: f"{user}-{uuid.uuid4().hex[:12]}" for user in NATS_USERS}
    mp = pytest.MonkeyPatch()
    for user, password in passwords.items():
        # nats-server reads them from its environment (the file's $LSS_NATS_<USER>_PASSWORD).
        mp.setenv(f"LSS_NATS_{user.upper().replace('-', '_')}_PASSWORD", password)
    server = natsserver.NatsServer(directory / "store", extra_args=["--config", str(config)])
    try:
        server.start()
        yield SecuredNats(url=server.url, passwords=passwords, log_file=server.log_file)
    finally:
        server.stop(timeout_seconds=5.0)
        mp.undo()
