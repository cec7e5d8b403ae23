"""The egress domains' answers: reused for ``dns_cache_seconds``, then forgotten — also for a
domain no sandbox names any more (the cache does not grow for the life of the process)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from lss_common.kube import client
from lss_common.runtime import clock as clock_module
from lss_sandbox_reconciler import observe
from lss_sandbox_reconciler import settings as settings_module


def _no_api_server() -> client.Kube:
    raise AssertionError("resolving egress domains never touches the Kubernetes client")


async def test_answers_are_reused_then_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, port: Any, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (f"192.0.2.{len(asked)}", 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    clock = clock_module.FakeClock()
    settings = settings_module.SandboxReconcilerSettings.model_validate(
        {"reconcile": {"dns_cache_seconds": 60.0}}
    )
    observer = observe.Observer(_no_api_server, settings=settings, clock=clock)

    first = await observer.resolve_domains(("a.example", "b.example"))
    assert first == {"a.example": ("192.0.2.1",), "b.example": ("192.0.2.2",)}
    clock.advance(30)
    assert await observer.resolve_domains(("a.example",)) == {"a.example": ("192.0.2.1",)}
    assert asked == ["a.example", "b.example"]  # reused within dns_cache_seconds

    clock.advance(40)  # 70 s: both answers are stale
    assert await observer.resolve_domains(("a.example",)) == {"a.example": ("192.0.2.3",)}
    # b.example, asked for by no one since, is gone from the cache, not kept for ever.
    assert set(observer._resolved) == {"a.example"}
