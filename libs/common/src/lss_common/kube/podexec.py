"""Run one command in a pod's container through the API server's ``pods/exec`` subresource.

The command is an **argv list**, sent as repeated ``command`` query parameters; the kubelet
(container runtime) executes it directly, with no shell on our side or on the API server's,
so no element of it is ever parsed as a command line. Whatever interprets an element (e.g.
``python3 -c <script>``) is the caller's explicit choice.

The stream is the websocket ``v4.channel.k8s.io`` protocol (kubernetes_asyncio's
``WsApiClient``): every frame starts with its channel byte (1 stdout, 2 stderr, 3 the final
``Status``). stdin and a TTY are never requested. Only the last ``max_output_bytes`` of each
output stream are kept, so a chatty command cannot grow our memory.

The verdict comes from the ``Status`` on channel 3: ``Success``; ``Failure`` with reason
``NonZeroExitCode`` and the exit code in ``details.causes`` (a real kubelet); any other
``Failure`` carries the runtime's message (kwok, for one, reports ``exit status N`` only in
the message). A command still running at the deadline is abandoned (``timed_out``): the
stream is closed; the process may linger in the container, which is the caller's to handle
(the pool manager replaces such a pod).

Errors opening the stream are translated like ``objects.py`` does: 403 → ``PermanentError``
(RBAC needs ``get`` and ``create`` on ``pods/exec``: the websocket is an HTTP GET), 404 →
``NotFoundError``, 400 (container not running, ...) → ``InvalidObjectError``, anything else
→ ``RetryableError``. This module decides nothing about what a result means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiohttp
from kubernetes_asyncio.stream import WsApiClient

from lss_common import errors
from lss_common.kube import client as client_module
from lss_common.kube import objects

logger = logging.getLogger(__name__)

STDOUT_CHANNEL: Final = 1
STDERR_CHANNEL: Final = 2
STATUS_CHANNEL: Final = 3
PROTOCOL: Final = "v4.channel.k8s.io"
NON_ZERO_EXIT_CODE: Final = "NonZeroExitCode"


@dataclasses.dataclass(frozen=True, slots=True)
class ExecResult:
    """How a command ended, with the tail of its output."""

    exit_code: int | None
    """0 on success, the code when the runtime reported one, None when it did not end with a
    known code (timed out, or a failure reported only as a message)."""
    stdout: bytes
    stderr: bytes
    message: str | None = None
    """The failure ``Status`` message, if any."""
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclasses.dataclass(slots=True)
class OutputTail:
    """The last ``limit`` bytes written to one stream."""

    limit: int
    data: bytearray = dataclasses.field(default_factory=bytearray)

    def write(self, chunk: bytes) -> None:
        self.data.extend(chunk)
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def value(self) -> bytes:
        return bytes(self.data)


def parse_status(data: bytes) -> tuple[int | None, str | None]:
    """``(exit code, failure message)`` from the ``Status`` sent on the status channel.

    ``(0, None)`` for Success; ``(code, message)`` for NonZeroExitCode; ``(None, message)``
    for any other failure, including a Status that is not valid JSON (never a success).
    """
    try:
        status = json.loads(data)
    except ValueError:
        return None, f"unreadable exec status: {data[:200]!r}"
    if not isinstance(status, dict):
        return None, f"unreadable exec status: {data[:200]!r}"
    if status.get("status") == "Success":
        return 0, None
    message = str(status.get("message") or status.get("reason") or "exec failed")
    if status.get("reason") == NON_ZERO_EXIT_CODE:
        for cause in (status.get("details") or {}).get("causes") or ():
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", "")), message
                except ValueError:
                    break
    return None, message


def exec_query(argv: Sequence[str], *, container: str) -> list[tuple[str, str]]:
    """The query parameters of an exec request: one ``command`` per argv element, in order."""
    if not argv:
        raise ValueError("an exec needs a non-empty argv")
    return [
        *(("command", element) for element in argv),
        ("container", container),
        ("stdin", "false"),
        ("stdout", "true"),
        ("stderr", "true"),
        ("tty", "false"),
    ]


class ExecNotStarted(errors.RetryableError):
    """The exec never reached the container (the connection or the handshake failed with a
    transient error): the command did not run, so trying it again cannot run it twice."""


class PodExecutor:
    """Exec client for one process, sharing the main ApiClient's configuration (a component).

    The websocket client is created on first use (exec is rare: once per warm pod) and closed
    by ``stop()``.
    """

    def __init__(self, kube: Callable[[], client_module.Kube], *, name: str = "pod-exec"):
        self._kube = kube
        self._name = name
        self._ws: WsApiClient | None = None

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()

    async def is_ready(self) -> bool:
        return True

    def _client(self) -> WsApiClient:
        if self._ws is None:
            self._ws = WsApiClient(configuration=self._kube().api.configuration)
        return self._ws

    async def run(
        self,
        *,
        namespace: str,
        pod: str,
        container: str,
        argv: Sequence[str],
        timeout_seconds: float,
        max_output_bytes: int = 4096,
    ) -> ExecResult:
        """Run ``argv`` in ``namespace/pod``'s ``container``; the result within the deadline."""
        path = objects.POD.path(namespace=namespace, name=pod, subresource="exec")
        what = f"exec in Pod {namespace}/{pod}"
        stdout = OutputTail(max_output_bytes)
        stderr = OutputTail(max_output_bytes)
        verdict: tuple[int | None, str | None] | None = None
        started = False  # the handshake completed: from here the command may have run
        try:
            async with asyncio.timeout(timeout_seconds):
                request: Any = await self._client().call_api(
                    path,
                    "GET",
                    query_params=exec_query(argv, container=container),
                    header_params={"sec-websocket-protocol": PROTOCOL},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                )
                async with request as ws:
                    started = True
                    async for frame in ws:
                        if frame.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            break
                        data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                        if not data:
                            continue
                        channel, payload = data[0], data[1:]
                        if channel == STDOUT_CHANNEL:
                            stdout.write(payload)
                        elif channel == STDERR_CHANNEL:
                            stderr.write(payload)
                        elif channel == STATUS_CHANNEL and payload:
                            verdict = parse_status(payload)
        except TimeoutError:
            return ExecResult(
                exit_code=None,
                stdout=stdout.value(),
                stderr=stderr.value(),
                message=f"still running after {timeout_seconds:g} s",
                timed_out=True,
            )
        except aiohttp.WSServerHandshakeError as error:
            translated = _translate(error.status, what=what, message=error.message)
            if objects.is_refusal(
                error.status, translated
            ) and not await client_module.is_api_server_ready(self._kube()):
                translated = objects.refused_while_unready(translated)
            if type(translated) is errors.RetryableError:
                raise ExecNotStarted(str(translated)) from error
            raise translated from error
        except (aiohttp.ClientError, OSError) as error:
            if not started:
                raise ExecNotStarted(f"{what}: not started: {error}") from error
            raise errors.RetryableError(f"{what}: {error}") from error
        if verdict is None:
            # The stream closed without a Status: the command's fate is unknown.
            verdict = (None, "the exec stream ended without a status")
        exit_code, message = verdict
        return ExecResult(
            exit_code=exit_code, stdout=stdout.value(), stderr=stderr.value(), message=message
        )


def _translate(status: int, *, what: str, message: str) -> errors.LssError:
    if status == 403:
        return errors.PermanentError(
            f"{what}: forbidden (needs get and create on pods/exec): {message}", reason="Forbidden"
        )
    if status == 404:
        return errors.NotFoundError(f"{what}: not found: {message}")
    if status == 400:
        return errors.InvalidObjectError(f"{what}: refused: {message}", field="command")
    return errors.RetryableError(f"{what}: HTTP {status}: {message}")
