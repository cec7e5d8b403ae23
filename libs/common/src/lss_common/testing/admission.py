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

POLICY: Final = objects.ApiResource(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="validatingadmissionpolicies",
    kind="ValidatingAdmissionPolicy",
    namespaced=False,
)
BINDING: Final = objects.ApiResource(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="validatingadmissionpolicybindings",
    kind="ValidatingAdmissionPolicyBinding",
    namespaced=False,
)
REFUSAL_MESSAGE: Final = "refused by the test's admission policy"


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
    name = f"lss-test-refuse-{uuid.uuid4().hex[:8]}"
    await objects.create_object(
        kube,
        resource=POLICY,
        body={
            "apiVersion": POLICY.api_version,
            "kind": POLICY.kind,
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [
                    {"expression": allow, "message": REFUSAL_MESSAGE, "reason": reason}
                ],
            },
        },
    )
    await objects.create_object(
        kube,
        resource=BINDING,
        body={
            "apiVersion": BINDING.api_version,
            "kind": BINDING.kind,
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )

    async def refused() -> bool:
        try:
            await probe()
        except (errors.PermanentError, errors.InvalidObjectError):
            return True
        return False

    try:
        in_effect: bool = await eventually.eventually(
            refused, timeout_seconds=30, describe="policy in effect"
        )
        assert in_effect
        yield
    finally:
        for resource in (BINDING, POLICY):
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(kube, resource=resource, name=name)

    async def allowed() -> bool:
        return not await refused()

    lifted: bool = await eventually.eventually(
        allowed, timeout_seconds=30, describe="policy lifted"
    )
    assert lifted


MUTATING_POLICY: Final = objects.ApiResource(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="mutatingadmissionpolicies",
    kind="MutatingAdmissionPolicy",
    namespaced=False,
)
MUTATING_BINDING: Final = objects.ApiResource(
    group="admissionregistration.k8s.io",
    version="v1",
    plural="mutatingadmissionpolicybindings",
    kind="MutatingAdmissionPolicyBinding",
    namespaced=False,
)


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
    name = f"lss-test-mutate-{uuid.uuid4().hex[:8]}"
    await objects.create_object(
        kube,
        resource=MUTATING_POLICY,
        body={
            "apiVersion": MUTATING_POLICY.api_version,
            "kind": MUTATING_POLICY.kind,
            "metadata": {"name": name},
            "spec": {
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
        },
    )
    await objects.create_object(
        kube,
        resource=MUTATING_BINDING,
        body={
            "apiVersion": MUTATING_BINDING.api_version,
            "kind": MUTATING_BINDING.kind,
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    try:
        in_effect: bool = await eventually.eventually(
            probe, timeout_seconds=30, describe="mutating policy in effect"
        )
        assert in_effect
        yield
    finally:
        for resource in (MUTATING_BINDING, MUTATING_POLICY):
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(kube, resource=resource, name=name)
