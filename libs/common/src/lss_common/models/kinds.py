"""Identity of the five LLMSafeSpace kinds on the API server: group, version, kinds, plurals.

Everything needed to address our custom resources (CustomObjectsApi takes group, version and
plural) and the names we put on objects (finalizer, category). No I/O, no schema: the shapes
of the objects are in the per-kind modules.
"""

from __future__ import annotations

from typing import Final

import msgspec

GROUP: Final = "llmsafespace.dev"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

#: Added to every Sandbox by the sandbox reconciler; removed only when the sandbox's pod,
#: Service, NetworkPolicies, ServiceAccount and non-retained PVC are gone.
FINALIZER: Final = f"{GROUP}/cleanup"

#: ``kubectl get llmsafespace`` lists every kind below.
CATEGORY: Final = "llmsafespace"


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    """How one kind is addressed: the arguments CustomObjectsApi and kubectl need."""

    kind: str
    plural: str
    singular: str
    short_name: str
    namespaced: bool

    @property
    def crd_name(self) -> str:
        """Name of the CustomResourceDefinition object, e.g. ``sandboxes.llmsafespace.dev``."""
        return f"{self.plural}.{GROUP}"


SANDBOX: Final = Resource(
    kind="Sandbox", plural="sandboxes", singular="sandbox", short_name="sb", namespaced=True
)
SANDBOX_PROFILE: Final = Resource(
    kind="SandboxProfile",
    plural="sandboxprofiles",
    singular="sandboxprofile",
    short_name="sbp",
    namespaced=True,
)
WARM_POOL: Final = Resource(
    kind="WarmPool", plural="warmpools", singular="warmpool", short_name="wp", namespaced=True
)
WARM_POD: Final = Resource(
    kind="WarmPod", plural="warmpods", singular="warmpod", short_name="wpod", namespaced=True
)
RUNTIME_ENVIRONMENT: Final = Resource(
    kind="RuntimeEnvironment",
    plural="runtimeenvironments",
    singular="runtimeenvironment",
    short_name="rte",
    namespaced=False,
)

ALL: Final = (SANDBOX, SANDBOX_PROFILE, WARM_POOL, WARM_POD, RUNTIME_ENVIRONMENT)
