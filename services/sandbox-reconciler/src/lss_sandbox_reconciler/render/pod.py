"""The sandbox pod: Pod Security ``restricted`` and the runtime-image contract (pure).

Contract (issue 4, DESIGN §3.7 and §4), each item asserted by the unit tests and admitted by
a real API server enforcing ``restricted`` in the integration test:

- non-root with the spec's UID/GID (fsGroup = GID), no privilege escalation, every
  capability dropped, seccomp RuntimeDefault or the Localhost profile asked for, AppArmor
  RuntimeDefault (or the runtime's Localhost profile) unless disabled, no host namespaces,
  no service-account token, no service links (no other Services' addresses in the env);
- one container ``sandbox`` serving HTTP on 8080, probed on ``/health`` and ``/ready``;
- ``readOnlyRootFilesystem`` per ``filesystem.readOnlyRoot``, writable paths as emptyDirs;
- requests and limits for CPU, memory and ephemeral storage (memory and storage requests
  equal limits: overcommitted memory means unpredictable OOM kills);
- the RuntimeClass of the effective security level; node selector and tolerations from
  configuration, plus the CPU-pinning label for pinned sandboxes — always in a *new* dict,
  never by mutating the configured one (the seed's shared-map bug, INVENTORY §10.5.15);
- a small ``terminationGracePeriodSeconds`` (the seed used the lifetime).
"""

from __future__ import annotations

from typing import Any, Final

from lss_sandbox_reconciler import merge, names
from lss_sandbox_reconciler import settings as settings_module
from lss_sandbox_reconciler.render import owner as owner_module
from lss_sandbox_reconciler.render import service as service_render
from lss_sandbox_reconciler.render import volume as volume_render

CONTAINER: Final = "sandbox"
COMPONENT: Final = "sandbox"
HEALTH_PATH: Final = "/health"
READY_PATH: Final = "/ready"
CPU_PINNING_ANNOTATION: Final = "cpu-pinning.llmsafespace.dev/enabled"


def _profile(profile: merge.SecurityProfile) -> dict[str, str]:
    result = {"type": profile.type}
    if profile.localhost_profile:
        result["localhostProfile"] = profile.localhost_profile
    return result


def node_selector(
    spec: merge.EffectiveSpec, *, settings: settings_module.SandboxOptions
) -> dict[str, str]:
    """The pod's node selector: configured labels, plus the pinning label when pinned.

    Always a fresh dict: the configured map is shared by every pod.
    """
    result = dict(settings.node_selector)
    if spec.cpu_pinning:
        result[settings.cpu_pinning_node_label] = "true"
    return result


def _tolerations(settings: settings_module.SandboxOptions) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for toleration in settings.tolerations:
        item: dict[str, Any] = {"operator": toleration.operator}
        if toleration.key is not None:
            item["key"] = toleration.key
        if toleration.value is not None:
            item["value"] = toleration.value
        if toleration.effect is not None:
            item["effect"] = toleration.effect
        if toleration.toleration_seconds is not None:
            item["tolerationSeconds"] = toleration.toleration_seconds
        result.append(item)
    return result


def _affinity(spec: merge.EffectiveSpec) -> dict[str, Any] | None:
    if not spec.required_node_features:
        return None
    expressions = [
        {"key": feature, "operator": "Exists"} for feature in spec.required_node_features
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def _probe(path: str, *, initial_delay_seconds: int, period_seconds: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": service_render.PORT_NAME, "scheme": "HTTP"},
        "initialDelaySeconds": initial_delay_seconds,
        "periodSeconds": period_seconds,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }


def render_pod(
    spec: merge.EffectiveSpec,
    *,
    owner: owner_module.Owner,
    settings: settings_module.SandboxOptions,
) -> dict[str, Any]:
    """The pod manifest."""
    volumes, mounts = volume_render.render_volumes(spec, sandbox_name=owner.name, settings=settings)
    resources = {
        "requests": {
            "cpu": spec.cpu_request,
            "memory": spec.memory,
            "ephemeral-storage": spec.ephemeral_storage,
        },
        "limits": {
            "cpu": spec.cpu_limit,
            "memory": spec.memory,
            "ephemeral-storage": spec.ephemeral_storage,
        },
    }
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": spec.run_as_user,
        "runAsGroup": spec.run_as_group,
        "fsGroup": spec.run_as_group,
        # Only re-chown a volume whose root does not match yet: large /data volumes would
        # otherwise be walked on every start.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": _profile(spec.seccomp),
    }
    if spec.app_armor is not None:
        pod_security["appArmorProfile"] = _profile(spec.app_armor)
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {
                "name": service_render.PORT_NAME,
                "containerPort": merge.AGENT_PORT,
                "protocol": "TCP",
            }
        ],
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_group,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": spec.read_only_root,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": _profile(spec.seccomp),
        },
        "livenessProbe": _probe(HEALTH_PATH, initial_delay_seconds=5, period_seconds=10),
        "readinessProbe": _probe(READY_PATH, initial_delay_seconds=2, period_seconds=5),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    metadata = owner_module.child_metadata(
        owner, name=names.pod_name(owner.name), component=COMPONENT
    )
    if spec.cpu_pinning:
        metadata["annotations"] = {CPU_PINNING_ANNOTATION: "true"}
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.service_account_name(owner.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security,
        "containers": [container],
        "volumes": volumes,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
    }
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    selector = node_selector(spec, settings=settings)
    if selector:
        pod_spec["nodeSelector"] = selector
    tolerations = _tolerations(settings)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    affinity = _affinity(spec)
    if affinity is not None:
        pod_spec["affinity"] = affinity
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}
