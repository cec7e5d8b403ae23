"""Make the API server refuse chosen writes in one namespace, as an operator's admission
policy, a quota or a missing RBAC rule would: a ValidatingAdmissionPolicy and its binding,
matched to the namespace by its name label, removed when the block ends.

For integration tests of the paths that handle refused writes; the policy takes effect
asynchronously, so the block starts only once a probe write is refused. :func:`mutating`
does the same for a platform that changes what is created (a MutatingAdmissionPolicy).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from lss_common import errors
from lss_common.kube import client, objects
from lss_common.testing import eventually


def _admission_kind(kind: str) -> objects.ApiResource:
    plural = kind.lower().removesuffix("y") + ("ies" if kind.endswith("y") else "s")
    return objects.ApiResource(
        group="admissionregistration.k8s.io",
        version="v1",
        plural=plural,
        kind=kind,
        namespaced=False,
    )


POLICY: Final = _admission_kind("ValidatingAdmissionPolicy")
BINDING: Final = _admission_kind("ValidatingAdmissionPolicyBinding")
MUTATING_POLICY: Final = _admission_kind("MutatingAdmissionPolicy")
MUTATING_BINDING: Final = _admission_kind("MutatingAdmissionPolicyBinding")
REFUSAL_MESSAGE: Final = "refused by the test's admission policy"


@contextlib.asynccontextmanager
async def _policy_in(
    kube: client.Kube,
    *,
    kinds: tuple[objects.ApiResource, objects.ApiResource],
    namespace: str,
    spec: dict[str, Any],
    binding: dict[str, Any],
    in_effect: Callable[[], Awaitable[bool]],
) -> AsyncIterator[None]:
    """An admission policy (``kinds``: policy and binding) bound to ``namespace`` by its name
    label, from once ``in_effect`` says so until the block ends."""
    policy_kind, binding_kind = kinds
    name = f"lss-test-{uuid.uuid4().hex[:8]}"
    for resource, body_spec in (
        (policy_kind, spec),
        (
            binding_kind,
            {
                "policyName": name,
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
                **binding,
            },
        ),
    ):
        await objects.create_object(
            kube,
            resource=resource,
            body={
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {"name": name},
                "spec": body_spec,
            },
        )
    try:
        took: bool = await eventually.eventually(
            in_effect, timeout_seconds=30, describe=f"{policy_kind.kind} in effect"
        )
        assert took
        yield
    finally:
        for resource in (binding_kind, policy_kind):
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(kube, resource=resource, name=name)


@contextlib.asynccontextmanager
async def refusing(
    kube: client.Kube,
    *,
    namespace: str,
    rule: dict[str, Any],
    probe: Callable[[], Awaitable[None]],
    allow: str = "false",
    reason: str = "Forbidden",
) -> AsyncIterator[None]:
    """Refuse the writes ``rule`` matches in ``namespace`` until the block ends: 403 with
    ``reason`` Forbidden, 422 with Invalid.

    ``allow`` is the policy's CEL expression (true: allowed), e.g. to refuse the writes of
    one object only. ``probe`` makes one refused write; the block starts once the API server
    refuses it (the policy takes effect asynchronously) and ends once it is allowed again.
    """

    async def refused() -> bool:
        try:
            await probe()
        except (errors.PermanentError, errors.InvalidObjectError):
            return True
        return False

    async with _policy_in(
        kube,
        kinds=(POLICY, BINDING),
        namespace=namespace,
        spec={
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "validations": [{"expression": allow, "message": REFUSAL_MESSAGE, "reason": reason}],
        },
        binding={"validationActions": ["Deny"]},
        in_effect=refused,
    ):
        yield

    async def allowed() -> bool:
        return not await refused()

    lifted: bool = await eventually.eventually(
        allowed, timeout_seconds=30, describe="policy lifted"
    )
    assert lifted


@contextlib.asynccontextmanager
async def mutating(
    kube: client.Kube,
    *,
    namespace: str,
    rule: dict[str, Any],
    apply_configuration: str,
    probe: Callable[[], Awaitable[bool]],
) -> AsyncIterator[None]:
    """Mutate the creates ``rule`` matches in ``namespace`` until the block ends, as a
    platform's admission does (a mesh injecting its sidecar's volumes, a policy engine's
    labels): a MutatingAdmissionPolicy whose ``apply_configuration`` is the CEL expression
    of the server-side apply configuration merged into each object.

    ``probe`` makes one matching write and says whether it came back mutated; the block
    starts once it does (the policy takes effect asynchronously).
    """
    async with _policy_in(
        kube,
        kinds=(MUTATING_POLICY, MUTATING_BINDING),
        namespace=namespace,
        spec={
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": {"resourceRules": [rule]},
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {"expression": apply_configuration},
                }
            ],
        },
        binding={},
        in_effect=probe,
    ):
        yield
