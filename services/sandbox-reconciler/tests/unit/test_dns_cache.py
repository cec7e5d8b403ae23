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
    # Reused within dns_cache_seconds; asked fully qualified (no search list applies).
    assert asked == ["a.example.", "b.example."]

    clock.advance(40)  # 70 s: both answers are stale
    assert await observer.resolve_domains(("a.example",)) == {"a.example": ("192.0.2.3",)}
    # b.example, asked for by no one since, is gone from the cache, not kept for ever.
    assert set(observer._resolved) == {"a.example"}


async def test_a_name_the_resolver_refuses_is_unresolved_not_a_failed_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name the resolver cannot encode (a label over 63 characters raises UnicodeError, a
    ValueError) is an unresolved domain, like an unknown one: the pass goes on (the lifetime
    is still enforced) instead of failing for ever."""

    async def getaddrinfo(host: str, port: Any, **_: Any) -> list[Any]:
        raise UnicodeError("encoding with 'idna' codec failed (label too long)")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    settings = settings_module.SandboxReconcilerSettings()
    observer = observe.Observer(_no_api_server, settings=settings, clock=clock_module.FakeClock())
    long_name = "a" * 64 + ".example.com"
    assert await observer.resolve_domains((long_name,)) == {long_name: ()}


async def test_ip_literals_are_asked_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, port: Any, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    settings = settings_module.SandboxReconcilerSettings()
    observer = observe.Observer(_no_api_server, settings=settings, clock=clock_module.FakeClock())
    await observer.resolve_domains(("151.101.0.10", "pypi.org."))
    assert sorted(asked) == ["151.101.0.10", "pypi.org."]
