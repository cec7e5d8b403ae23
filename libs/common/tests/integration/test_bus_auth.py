"""The services authenticate to a NATS server that requires it, over TLS when asked
(``LSS_NATS__USER``/``PASSWORD``, ``TOKEN``, ``TLS_CA_FILE``; real nats-server).

A server started with a user and password, with a token, or with TLS and a certificate of a
CA of the test's own: the bus connects, declares its streams and stores a message with the
right settings; without them (or with wrong ones, or without the CA) it never connects.
Wrong settings are refused before any connection, naming the field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import prometheus_client
import pytest
from pydantic import ValidationError

from lss_common import settings as settings_module
from lss_common.bus import connection as bus_connection
from lss_common.bus import metrics as bus_metrics
from lss_common.bus import topology
from lss_common.testing import bus as testing_bus
from lss_dev import nats_jwt, natsserver, pki

pytestmark = pytest.mark.integration


def _server(tmp_path: Path, args: Sequence[str]) -> Iterator[natsserver.NatsServer]:
    server = natsserver.NatsServer(tmp_path / "nats", extra_args=args).start()
    try:
        yield server
    finally:
        server.stop(timeout_seconds=5.0)


async def _stores_a_message(url: str, **options: object) -> bool:
    """Whether a bus with these NATS settings connects and stores a message (within 5 s)."""
    base = testing_bus.isolated_settings(url)
    # Validated like the environment would be (model_copy does not validate).
    fields = {**base.nats.model_dump(exclude_none=True), **options}
    settings = base.model_copy(update={"nats": settings_module.NatsSettings(**fields)})
    registry = prometheus_client.CollectorRegistry()
    metrics = bus_metrics.BusMetrics.register(registry)

    def errors() -> float:
        value = registry.get_sample_value(
            "llmsafespace_bus_connection_events_total", {"event": "error"}
        )
        return 0.0 if value is None else value

    try:
        async with asyncio.timeout(5.0):
            connection = await bus_connection.connect(
                settings.nats, metrics=metrics, client_name="auth-test"
            )
    except TimeoutError:
        # Refused, retried until the timeout; then nothing retries behind the caller's back
        # (nats-py's own loop kept a client retrying for ever, and could swallow the
        # cancellation: a stopping service never got control back).
        before = errors()
        await asyncio.sleep(2 * settings.nats.reconnect_wait_seconds + 0.5)
        assert errors() == before, "a client kept retrying after the caller gave up"
        assert before >= 1  # the refusals were reported
        return False
    try:
        await topology.declare_streams(connection.jetstream, settings=settings.nats)
        subject = f"{settings.nats.subject_prefix}.evt.sandbox.ns.probe"
        ack = await connection.jetstream.publish(subject, b"{}", timeout=5.0)
        return ack.seq >= 1
    finally:
        await connection.close()


async def test_user_and_password(tmp_path: Path) -> None:
    for server in _server(tmp_path, ["--user", "lss", "--pass", "s3cret"]):
        assert await _stores_a_message(server.url, user="lss", password="s3cret")
        assert not await _stores_a_message(server.url)
        assert not await _stores_a_message(server.url, user="lss", password="wrong")


async def test_token(tmp_path: Path) -> None:
    for server in _server(tmp_path, ["--auth", "t0ken"]):
        assert await _stores_a_message(server.url, token="t0ken")
        assert not await _stores_a_message(server.url)
        assert not await _stores_a_message(server.url, token="other")


async def test_tls_verified_by_the_configured_ca(tmp_path: Path) -> None:
    pair = pki.loopback_serving(tmp_path / "tls", common_name="nats")
    ca = tmp_path / "tls" / "ca.crt"
    ca.write_bytes(pair.ca_pem)
    args = ["--tls", "--tlscert", str(pair.cert), "--tlskey", str(pair.key)]
    for server in _server(tmp_path, args):
        url = server.url.replace("nats://", "tls://")
        assert await _stores_a_message(url, tls_ca_file=str(ca))
        # Not trusted by the system's store: no connection.
        assert not await _stores_a_message(url)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"user": "lss"}, "nats.password"),
        ({"password": "x"}, "nats.user"),
        ({"tls_cert_file": "c.pem"}, "nats.tls_key_file"),
        ({"user": "lss", "password": "x", "token": "t"}, "user and token"),
    ],
)
def test_incomplete_or_conflicting_credentials_are_refused_by_name(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        settings_module.NatsSettings(**values)


def test_secrets_never_show_in_the_settings() -> None:
    nats = settings_module.NatsSettings(user="lss", password="s3cret")
    assert "s3cret" not in repr(nats)
    assert "s3cret" not in nats.model_dump_json()


async def test_credentials_file(tmp_path: Path) -> None:
    """Decentralised JWT authentication (``LSS_NATS__CREDENTIALS_FILE``, a ``.creds`` file as
    ``nsc`` writes it): a user of the trusted operator's account connects and stores a
    message; no credentials, or a user of an operator the server does not trust, never."""
    trusted = nats_jwt.new_operator()
    config = tmp_path / "operator.conf"
    config.write_text(trusted.server_config())
    good = trusted.creds(tmp_path / "good.creds")
    stranger = nats_jwt.new_operator().creds(tmp_path / "stranger.creds")
    for server in _server(tmp_path, ["--config", str(config)]):
        assert await _stores_a_message(server.url, credentials_file=str(good))
        assert not await _stores_a_message(server.url)
        assert not await _stores_a_message(server.url, credentials_file=str(stranger))
