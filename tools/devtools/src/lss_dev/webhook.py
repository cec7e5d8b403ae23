"""A validating admission webhook served by the test process: the API server calls it for the
writes a rule matches in one namespace, and the test decides each answer.

An admission policy (``lss_common.testing.admission``) can refuse a write with a 403 or a
422; only a webhook makes the real API server answer with another status, such as a 409
Conflict that keeps coming back, so the paths that handle it can be tested against it.

The server listens on 127.0.0.1 with a one-off CA (``pki.loopback_serving``) whose
certificate is the configuration's ``caBundle``. The configuration takes effect
asynchronously: the block starts once a probe write has reached the server, and ends once
probes no longer do (until then the server keeps answering, so no write meets a webhook
that is gone and fails with a 500).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import socket
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.testing import eventually
from lss_dev import pki

WEBHOOKS: Final = objects.ApiResource(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="validatingwebhookconfigurations",
    kind="ValidatingWebhookConfiguration",
    namespaced=False,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Denial:
    """How the API server is to answer the write (the status it returns to the writer)."""

    code: int
    reason: str
    message: str


def conflict(message: str) -> Denial:
    return Denial(code=409, reason="Conflict", message=message)


Answer = Callable[[Mapping[str, Any]], Denial | None]
"""Decides one ``AdmissionReview.request`` (operation, name, object, oldObject, ...):
a Denial, or None to allow it."""


def conflicting(
    *,
    times: int,
    when: Callable[[Mapping[str, Any]], bool],
    message: str = "the test's webhook: another writer got there first",
) -> Answer:
    """Deny the first ``times`` writes ``when`` selects with 409 Conflict, as a writer
    racing each one would; allow everything else."""
    denied = 0

    def answer(request: Mapping[str, Any]) -> Denial | None:
        nonlocal denied
        if denied >= times or not when(request):
            return None
        denied += 1
        return conflict(message)

    return answer


def status_probe(
    kube: client.Kube, *, resource: objects.ApiResource, namespace: str, name: str
) -> Callable[[], Awaitable[None]]:
    """A probe for :func:`serving`: an empty merge patch of an existing object's status (an
    UPDATE of its status subresource, which a status rule matches)."""

    async def probe() -> None:
        await objects.patch_object(
            kube,
            resource=resource,
            namespace=namespace,
            name=name,
            subresource="status",
            body={"status": {}},
        )

    return probe


def configuration(
    name: str,
    *,
    url: str,
    rule: Mapping[str, Any],
    namespace: str,
    ca_pem: bytes | None = None,
    timeout_seconds: int = 5,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration calling ``url`` for the writes ``rule`` matches in
    ``namespace``; a failing call fails the write (``failurePolicy: Fail``)."""
    client_config: dict[str, Any] = {"url": url}
    if ca_pem is not None:
        client_config["caBundle"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": WEBHOOKS.api_version,
        "kind": WEBHOOKS.kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.test.llmsafespace.dev",
                "clientConfig": client_config,
                "rules": [dict(rule)],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": timeout_seconds,
            }
        ],
    }


class Webhook:
    """The running webhook: what it was asked and what it denied."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.requests: list[Mapping[str, Any]] = []
        self.denied: list[Mapping[str, Any]] = []

    async def _review(self, request: web.Request) -> web.Response:
        review = await request.json()
        admission: Mapping[str, Any] = review.get("request") or {}
        self.requests.append(admission)
        denial = self._answer(admission)
        response: dict[str, Any] = {"uid": admission.get("uid", ""), "allowed": denial is None}
        if denial is not None:
            self.denied.append(admission)
            response["status"] = {
                "code": denial.code,
                "reason": denial.reason,
                "message": denial.message,
            }
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )


@contextlib.asynccontextmanager
async def serving(
    kube: client.Kube,
    *,
    namespace: str,
    rule: Mapping[str, Any],
    answer: Answer,
    probe: Callable[[], Awaitable[object]],
) -> AsyncIterator[Webhook]:
    """Answer the writes ``rule`` matches in ``namespace`` with ``answer`` until the block
    ends. ``probe`` makes one write the rule matches (its outcome is ignored: ``answer``
    may deny it); the block starts once a probe reached the webhook."""
    name = f"lss-test-webhook-{uuid.uuid4().hex[:8]}"
    webhook = Webhook(answer)
    app = web.Application()
    app.router.add_post("/validate", webhook._review)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with tempfile.TemporaryDirectory(prefix="lss-webhook-") as directory:
        pair = pki.loopback_serving(Path(directory), common_name=name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pair.cert, pair.key)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        await web.SockSite(runner, listener, ssl_context=context).start()
        try:
            await objects.create_object(
                kube,
                resource=WEBHOOKS,
                body=configuration(
                    name,
                    url=f"https://127.0.0.1:{port}/validate",
                    rule=rule,
                    namespace=namespace,
                    ca_pem=pair.ca_pem,
                ),
            )
            try:

                async def called() -> bool:
                    return await _reaches(webhook, probe)

                in_effect: bool = await eventually.eventually(
                    called, timeout_seconds=30, describe="webhook called"
                )
                assert in_effect
                yield webhook
            finally:
                with contextlib.suppress(errors.NotFoundError):
                    await objects.delete_object(kube, resource=WEBHOOKS, name=name)

                async def gone() -> bool:
                    return not await _reaches(webhook, probe)

                removed: bool = await eventually.eventually(
                    gone, timeout_seconds=30, describe="webhook removed"
                )
                assert removed
        finally:
            await runner.cleanup()


async def _reaches(webhook: Webhook, probe: Callable[[], Awaitable[object]]) -> bool:
    before = len(webhook.requests)
    with contextlib.suppress(errors.LssError):
        await probe()
    return len(webhook.requests) > before
