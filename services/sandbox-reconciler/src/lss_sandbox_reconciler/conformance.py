"""Whether a claimed warm pod is the pod the sandbox would get cold (pure).

The check of ``warm.verify_claimed_pods=strict``, on top of the default one: the claim
always checks that the adopted pod is the one the pool manager created and recorded,
unchanged (``lss_common.logic.pod_records``), which holds whatever mutating admission added
at creation. This comparison also guards against a pool manager that built the wrong pod,
at the price of refusing most of what a platform's admission adds: the pod the adoption
returns (the claim reads nothing more) is compared with the sandbox's own rendered pod before
the sandbox is said Running; a deviation discards the claim and the sandbox starts cold.

The comparison allows exactly what the API server and its default admission add to a pod
(defaults inside containers and probes, scheduling fields, the two default tolerations,
quantities in another spelling) and nothing else:

- every field of the rendered spec is in the pod, equal (dicts: recursively; containers,
  volumes, mounts, ports and env by name: the same set), or absent where it is false, zero
  or empty (the API server omits those);
- security contexts, pod and container: every rendered field equal, and nothing more but
  the SELinux and supplemental-group fields a platform's admission sets
  (:data:`_CONTEXT_ADDED`);
- the pod spec and each container carry no field beyond the rendered ones but those
  defaulted or added for scheduling (:data:`_POD_DEFAULTED`, :data:`_CONTAINER_DEFAULTED`:
  a RuntimeClass's node selector and tolerations, image pull secrets): no init or ephemeral
  container, host namespace, DNS override, ``envFrom``, lifecycle hook or command the sandbox
  did not ask for; containers a mesh injects into every pod only when named in
  ``warm.injected_containers``;
- an image may be pinned to its digest (``image@sha256:...``, an admission policy's doing);
- no annotation a container runtime acts on (:data:`_RUNTIME_ANNOTATION_PREFIXES`);
- the ServiceAccount is not compared: a warm pod runs as its pool's, with no token mounted
  (``automountServiceAccountToken: false`` is compared, and no volume can add one; the API
  server's scope policy admits controller pods only as ``sandbox-*`` or ``warmpool-*``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from lss_common import errors
from lss_common.logic import quantities

#: Pod spec fields the API server (or a default admission plugin) sets when the manifest
#: does not: scheduling, defaults, RuntimeClass overhead, priority.
_POD_DEFAULTED: Final = frozenset(
    {
        "dnsPolicy",
        "schedulerName",
        "nodeName",
        "nodeSelector",
        "tolerations",
        "priority",
        "priorityClassName",
        "preemptionPolicy",
        "overhead",
        "serviceAccount",
        "serviceAccountName",
        "imagePullSecrets",
    }
)
#: Fields a platform's admission adds to security contexts (OpenShift's SCCs, for one).
_CONTEXT_ADDED: Final = frozenset(
    {"seLinuxOptions", "seLinuxChangePolicy", "supplementalGroups", "supplementalGroupsPolicy"}
)
#: Annotations container runtimes act on (a Kata, gVisor or CRI-O knob on a pod).
_RUNTIME_ANNOTATION_PREFIXES: Final = (
    "io.katacontainers.",
    "dev.gvisor.",
    "io.kubernetes.cri-o.",
    "io.kubernetes.cri.",
    "io.containerd.",
)
_POD_IGNORED: Final = frozenset({"serviceAccount", "serviceAccountName", "nodeName"})
_CONTAINER_DEFAULTED: Final = frozenset(
    {"terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy"}
)
_EXACT: Final = frozenset({"securityContext"})
#: Lists whose items are matched by a key, not by position.
_KEYED_LISTS: Final[dict[str, str]] = {
    "containers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "env": "name",
}
_MISSING: Final = object()


def deviations(
    expected: dict[str, Any],
    actual: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    injected: frozenset[str] = frozenset(),
) -> list[str]:
    """Where the pod spec ``actual`` is not the rendered spec ``expected`` (paths, each with
    what differs); empty when the pod is the one the sandbox would get. ``annotations``: the
    pod's; ``injected``: names of containers admission adds to every pod."""
    found: list[str] = []
    for key in sorted((annotations or {}).keys()):
        if key.startswith(_RUNTIME_ANNOTATION_PREFIXES):
            found.append(f"metadata.annotations[{key}]: a container runtime option")
    actual = _without_injected(actual, injected)
    for key in sorted(set(actual) - set(expected) - _POD_DEFAULTED):
        found.append(f"spec.{key}: not in the sandbox's pod")
    want_tolerations = expected.get("tolerations") or []
    have_tolerations = actual.get("tolerations") or []
    if any(t not in have_tolerations for t in want_tolerations):
        found.append(f"spec.tolerations: {have_tolerations!r}, not {want_tolerations!r}")
    for key, want in expected.items():
        if key in _POD_IGNORED or key == "tolerations":
            continue
        have = actual.get(key, _MISSING)
        if key == "containers":
            _keyed(want, have, f"spec.{key}", found, item=_container)
        else:
            _compare(want, have, f"spec.{key}", found)
    return found


def _without_injected(actual: dict[str, Any], injected: frozenset[str]) -> dict[str, Any]:
    if not injected:
        return actual
    trimmed = dict(actual)
    for key in ("containers", "initContainers"):
        if isinstance(actual.get(key), list):
            kept = [
                c for c in actual[key] if not (isinstance(c, dict) and c.get("name") in injected)
            ]
            if kept:
                trimmed[key] = kept
            else:
                trimmed.pop(key)
    return trimmed


def _container(want: Any, have: Any, path: str, found: list[str]) -> None:
    if not isinstance(have, dict) or not isinstance(want, dict):
        _compare(want, have, path, found)
        return
    for key in sorted(set(have) - set(want) - _CONTAINER_DEFAULTED):
        found.append(f"{path}.{key}: not in the sandbox's pod")
    for key, value in want.items():
        _compare(value, have.get(key, _MISSING), f"{path}.{key}", found)


def _compare(want: Any, have: Any, path: str, found: list[str]) -> None:
    name = path.rsplit(".", 1)[-1]
    if have is _MISSING:
        # The API server omits a false, zero or empty field it stores (``hostNetwork``).
        if want not in (False, "", [], {}):
            found.append(f"{path}: missing")
    elif name in _EXACT:
        extra = set(have) - set(want) - _CONTEXT_ADDED if isinstance(have, dict) else set()
        if (
            not isinstance(have, dict)
            or extra
            or any(have.get(key, _MISSING) != value for key, value in want.items())
        ):
            found.append(f"{path}: {have!r}, not {want!r}")
    elif name == "image" and isinstance(want, str) and isinstance(have, str):
        # Pinned to its digest by an admission policy: the same image.
        if have != want and not (have.startswith(want + "@sha256:") and "@" not in want):
            found.append(f"{path}: {have!r}, not {want!r}")
    elif isinstance(want, dict):
        if not isinstance(have, dict):
            found.append(f"{path}: {have!r}, not {want!r}")
            return
        for key, value in want.items():
            _compare(value, have.get(key, _MISSING), f"{path}.{key}", found)
    elif isinstance(want, list) and name in _KEYED_LISTS:
        _keyed(want, have, path, found, item=_compare)
    elif not _same(want, have):
        found.append(f"{path}: {have!r}, not {want!r}")


def _keyed(
    want: Any,
    have: Any,
    path: str,
    found: list[str],
    *,
    item: Callable[[Any, Any, str, list[str]], None],
) -> None:
    key = _KEYED_LISTS[path.rsplit(".", 1)[-1]]
    if not isinstance(want, list) or not isinstance(have, list):
        found.append(f"{path}: {have!r}, not {want!r}")
        return
    wanted = {entry.get(key): entry for entry in want if isinstance(entry, dict)}
    present = {entry.get(key): entry for entry in have if isinstance(entry, dict)}
    if set(wanted) != set(present) or len(present) != len(have):
        found.append(f"{path}: {sorted(map(str, present))}, not {sorted(map(str, wanted))}")
        return
    for name, entry in wanted.items():
        item(entry, present[name], f"{path}[{name}]", found)


def _same(want: Any, have: Any) -> bool:
    """Equal, or the same quantity in another spelling (``1Gi`` and ``1073741824``)."""
    if want == have:
        return True
    if not isinstance(want, str | int) or not isinstance(have, str | int):
        return False
    try:
        return quantities.parse_quantity(want, field="") == quantities.parse_quantity(
            have, field=""
        )
    except errors.LssError:
        return False
