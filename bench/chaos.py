"""Randomized fault-injection soak: sandboxes, warm pools, kill -9 and hand deletions, then
the invariants read back from the API server and LSS_STATUS.

    uv run python bench/chaos.py [--seed N] [--state-dir /tmp/lss-chaos] [--chaos-seconds 600]
        [--converge-seconds 180] [--max-live 24] [--keep-platform]
        [--no-nats-faults] [--no-apiserver-faults] [--no-pauses]

What runs: the local platform (kube-apiserver, kube-controller-manager with its garbage
collector, kube-scheduler, kwok nodes, nats-server; started in ``--state-dir`` if needed), a
fresh namespace enforcing Pod Security ``restricted`` with a RuntimeEnvironment of its own
(``sandbox_cold_create.open_setup``), and five service processes sharing one set of streams
and durable consumers, as replicas in a cluster: one watcher, two sandbox reconcilers and two
pool managers, each with its own service name, HTTP port and log
(``<state-dir>/bench-logs/<namespace>-<service>.log``). Two WarmPools: ``std`` (standard) and
``high`` (securityLevel high), each with a minSize and a maxSize.

**Chaos phase** (``--chaos-seconds``): random actions drawn from ``--seed`` (the sequence
of actions is reproducible; their timing against the services is not):

* create a sandbox, or a burst of 10 at once: matching the ``std`` pool (warm), matching the
  ``high`` pool, asking for other resources (cold), with ingress or with an egress domain;
  some with a ``timeout`` short enough to expire during the run (→ ``Terminated``);
* delete a sandbox, some right after their create (mid-claim, mid-creation);
* ``kill -9`` a random service process and start it again 0-5 s later; or a burst of 10
  (without room for one, 5 deletions) with a reconciler or a pool manager killed 0-300 ms
  into it (mid-claim, mid-creation, mid-refill, mid-release);
* delete a child by hand: a sandbox's pod, Service or deny NetworkPolicy, a WarmPod's pod;
* change a pool's minSize; once (``--pool-recreates``) delete the ``std`` pool and create
  it again under its name once it is gone;
* infrastructure faults (each on by default), in the background while the other actions go
  on: ``kill -9`` the nats-server and start it again 0-5 s later (same store, same ports;
  ``--no-nats-faults``); stop the kube-apiserver and start it again 0-5 s after it is gone
  (``--no-apiserver-faults``): ``kill -9``, or SIGTERM (its listener closes at once, but
  this build may linger for more than 30 s: SIGKILL after 10 s); SIGSTOP a service for
  1-10 s, then SIGCONT, as a GC pause or a starved CPU would (``--no-pauses``). Nothing
  touches the services around an outage: after each restart the soak times how long they
  take to answer ``/readyz`` again by themselves (more than ``--recovery-seconds`` is a
  violation). No nats-server or API server fault in the last ``--infra-quiet-seconds`` of
  the phase, and no API server fault within ``--apiserver-gap-seconds`` of its last
  restart (back-to-back outages let kwok's node leases expire: see "platform" below). A
  create or delete whose request failed while the API server was away is looked up again
  once it is back (a create that landed is adopted) or sent again (a delete). A platform
  component that goes down by itself (controller manager, scheduler, kwok) is recorded
  and started again.

A sampler checks the safety properties every ``--sample-seconds`` meanwhile (two sandboxes
on one pod, a pod owned by one sandbox and labelled for another, a pod with two controllers,
a pool above its maxSize). A process that exits without having been killed is a violation
(it is restarted so the soak goes on).

**Convergence** (``--converge-seconds``, counted from the moment the platform is back, every
paused process continued and every service ready): every service running, no more actions;
the full check is repeated until it passes twice in a row (an exit of a service on its
own, invariant 7, is history and does not hold it up) or the deadline passes, and the last
result is what is reported:

1. every sandbox that exists and has not expired is ``Running`` on ``status.podName``: an
   existing, Ready pod controlled by it and labelled with its UID, the only pod that is; an
   expired one is ``Terminated`` and nothing carries its UID any more;
2. no WarmPod Assigned to a sandbox that does not exist or does not reference it, none
   assigned twice to one sandbox; no pod with two controllers or without an owner, no child
   of ours whose owner is gone;
3. every deleted Sandbox is gone, and nothing in the namespace (pods, Services,
   ServiceAccounts, NetworkPolicies, PVCs, WarmPods) carries its UID (label
   ``llmsafespace.dev/sandbox-uid``, owner reference, ``assignedTo``);
4. every running sandbox has its deny NetworkPolicy (selecting its pod by UID), its ingress
   policy when it asked for ingress, and the Service that ``status.endpoint`` names;
5. each pool: WarmPods ≤ maxSize, Ready unassigned = min(minSize, maxSize - assigned), each
   Ready one on a Ready pod it controls, and the status counts equal the objects;
6. the last LSS_STATUS record of every sandbox agrees with the API server (phase, pod,
   UID); a deleted sandbox's last record says ``deleted``;
7. no service died on its own; counters of errors, failures, refusals and conflicts are
   scraped from every process's ``/metrics`` (before each kill and at the end) and reported;
8. every service process is running and answers ``/readyz`` (it recovered from the outages
   by itself), and after every nats-server or API server restart all of them were ready
   again within ``--recovery-seconds``.

Violations marked ``platform`` are the local platform's, not the services': a platform
component down on its own, or kwok nodes NotReady (seen by the sampler, or in the
controller manager's log of the run) — their leases were not renewed while the API server
was away, the node lifecycle controller marked every pod on them not Ready, and kwok never
makes those pods Ready again, so invariants 1 and 5 fail on them until the end.

Output: the timeline on stdout and in ``/tmp/chaos-timeline-<seed>.jsonl`` (seconds since
the start and UTC, to find the moment in the services' logs); the violations, each with
object excerpts, the service log lines and timeline entries naming it; a JSON summary in
``--out`` (``/tmp/chaos-result.json``: counts of actions, sandboxes, kills, pauses and
infrastructure faults (each with its downtime and the services' time to be ready again),
the error counters, the services' ERROR/WARNING log lines grouped by message, error and
innermost frames, and the violations of the *first* convergence check, which shows what took a while
to heal); every object of the namespace at the final check in ``/tmp/chaos-dump-<seed>.json``.
The seed fixes the sequence of actions, not their timing against the services: a re-run
with the same seed exercises the same scenario, not the same interleaving.

At the end every process started here is stopped, the namespace and streams are deleted
and, unless ``--keep-platform``, the platform is stopped (its state directory, with the
services' logs, stays).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import pathlib
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import nats
import yaml
from nats.js import errors as js_errors
from prometheus_client import parser as prometheus_parser

from lss_common import errors
from lss_common import settings as common_settings
from lss_common.bus import codec, topology
from lss_common.kube import objects
from lss_common.logic import subjects
from lss_common.models import kinds, labels, messages
from lss_dev import controlplane, processes
from lss_dev import platform as platform_module
from lss_pool_manager import settings as pool_settings
from lss_sandbox_reconciler import names as sandbox_names
from lss_sandbox_reconciler import settings as reconciler_settings
from lss_sandbox_reconciler.render import owner as render_owner
from lss_watcher import testing as watcher_testing

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sandbox_cold_create as cold_bench
import warmpods

SANDBOX_UID = render_owner.SANDBOX_UID
NODE = objects.ApiResource(group="", version="v1", plural="nodes", kind="Node", namespaced=False)
WARM_POOL_UID = f"{kinds.GROUP}/warmpool-uid"
FINALIZER = f"{kinds.GROUP}/cleanup"
CHILD_RESOURCES = {
    "Pod": objects.POD,
    "Service": objects.SERVICE,
    "ServiceAccount": objects.SERVICE_ACCOUNT,
    "NetworkPolicy": objects.NETWORK_POLICY,
    "PersistentVolumeClaim": objects.PERSISTENT_VOLUME_CLAIM,
}
FLAVOURS = {"std": 45, "high": 15, "cold": 20, "ingress": 10, "egress": 10}
POOLS: dict[str, dict[str, Any]] = {
    "std": {"securityLevel": "standard", "minSize": 10, "maxSize": 20},
    "high": {"securityLevel": "high", "minSize": 4, "maxSize": 8},
}
EXPIRY_SLACK_SECONDS = 15.0
ERROR_METRIC = re.compile(
    r"error|fail|refused|conflict|undecodable|exits|dropped|leaked|nonconforming|cleanup"
    r"|retired_pods|orphan_pods|warm_pods_released"
)
ERROR_LABEL_VALUES = {"error", "failed", "nak", "term", "refused", "conflict", "crashed"}
NATS = platform_module.NATS
APISERVER = "kube-apiserver"
APISERVER_STOP_SECONDS = 10.0
"""After SIGTERM, how long kube-apiserver may take to exit before it is killed."""
INFRA_WEIGHTS = {"nats": 3, "apiserver": 3, "pause": 3}
"""Weights of the infrastructure faults among the actions (the others sum to 79)."""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Timeline:
    """Everything the soak did, with seconds since the start and the UTC time (to find the
    moment in the services' logs)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.started = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self._file = path.open("w")

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def log(self, event: str, **details: Any) -> None:
        entry = {
            "t": self.now(),
            "utc": _utc_now().isoformat(timespec="milliseconds"),
            "event": event,
            **details,
        }
        self.events.append(entry)
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        shown = " ".join(f"{k}={v}" for k, v in details.items())
        print(f"[{entry['t']:8.2f}] {event} {shown}", flush=True)

    def close(self) -> None:
        self._file.close()


@dataclasses.dataclass
class Service:
    """One service process, started (and restarted) by this soak."""

    name: str
    module: str
    env: dict[str, str]
    port: int
    log: pathlib.Path
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False
    """Killed by the soak and not started again yet."""
    starts: int = 0
    kills: int = 0
    paused: bool = False
    """Stopped by SIGSTOP, not continued yet."""
    started_at: float = 0.0
    """When (monotonic) the current process was started."""
    pauses: int = 0
    unexpected_exits: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error_counters: Counter[str] = dataclasses.field(default_factory=Counter)
    """Error-like counters summed over the process's lives (scraped before each kill)."""

    def start(self) -> None:
        self.process = cold_bench._start(self.module, self.env, self.log)
        self.started_at = time.monotonic()
        self.starts += 1
        self.killed = False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclasses.dataclass
class Box:
    """A sandbox the soak created."""

    name: str
    flavour: str
    spec: dict[str, Any]
    created_at: float
    uid: str | None = None
    deleted_at: float | None = None
    create_error: str | None = None


@dataclasses.dataclass
class Violation:
    invariant: str
    subject: str
    message: str
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def _scrape_errors(port: int) -> dict[str, float]:
    """Non-zero error-like counter samples of one process's /metrics (empty if down)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=3)
            ) as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return {}
    found: dict[str, float] = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or not sample.value:
                continue
            label_text = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            if ERROR_METRIC.search(sample.name) or (
                set(sample.labels.values()) & ERROR_LABEL_VALUES
            ):
                found[f"{sample.name}{{{label_text}}}"] = sample.value
    return found


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _uid(obj: dict[str, Any]) -> str:
    return str(_meta(obj).get("uid", ""))


def _name(obj: dict[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def _controllers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in _meta(obj).get("ownerReferences") or () if r.get("controller")]


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    return {str(r.get("uid")) for r in _meta(obj).get("ownerReferences") or ()}


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def _excerpt(obj: dict[str, Any] | None) -> str:
    """The object as YAML without its managedFields (evidence)."""
    if obj is None:
        return "(absent)"
    meta = {k: v for k, v in _meta(obj).items() if k != "managedFields"}
    shown: dict[str, Any] = {"kind": obj.get("kind"), "metadata": meta}
    if obj.get("kind") in (None, "Pod"):
        spec = obj.get("spec") or {}
        shown["spec"] = {k: spec.get(k) for k in ("nodeName", "serviceAccountName") if k in spec}
    else:
        shown["spec"] = obj.get("spec")
    if "status" in obj:
        status = obj["status"]
        if obj.get("kind") in (None, "Pod") and isinstance(status, dict):
            status = {k: status.get(k) for k in ("phase", "conditions", "podIP") if k in status}
        shown["status"] = status
    return str(yaml.safe_dump(shown, sort_keys=False, width=100))


@dataclasses.dataclass
class Snapshot:
    """Every object of the namespace the invariants look at, from one round of lists."""

    taken_at: datetime.datetime
    sandboxes: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    warm_pods: list[dict[str, Any]]
    children: dict[str, list[dict[str, Any]]]

    def all_objects(self) -> Iterable[tuple[str, dict[str, Any]]]:
        for kind, items in self.children.items():
            for item in items:
                yield kind, item
        for item in self.warm_pods:
            yield "WarmPod", item


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.timeline = Timeline(pathlib.Path(f"/tmp/chaos-timeline-{args.seed}.jsonl"))
        self.services: dict[str, Service] = {}
        self.boxes: dict[str, Box] = {}
        self.serial = 0
        self.background: set[asyncio.Task[Any]] = set()
        self.transient: dict[str, dict[str, Any]] = {}
        self.pool_max_seen: dict[str, int] = defaultdict(int)
        self.pool_spec: dict[str, dict[str, Any]] = {k: dict(v) for k, v in POOLS.items()}
        self.pool_recreates = 0
        self._resolving = asyncio.Lock()
        self.pool_recreate_task: asyncio.Task[None] | None = None
        self.actions: Counter[str] = Counter()
        self.stopping = False
        self.first_check: list[str] = []
        """The violations of the first convergence check (those that healed later, too)."""
        self.first_clean_at: float | None = None
        self.infra_tasks: set[asyncio.Task[Any]] = set()
        """Restarts of platform components and SIGCONTs: awaited, never cancelled (the
        platform must come back, a paused process must go on)."""
        self.infra_down: set[str] = set()
        """Platform components stopped here and not back yet."""
        self.infra_faults: list[dict[str, Any]] = []
        self.platform_exits: list[dict[str, Any]] = []
        self.recovery_failures: list[dict[str, Any]] = []
        self.uncertain_creates: dict[str, Box] = {}
        """Creates that failed in a way that may have landed (the API server went away):
        looked up again once it is back, and adopted if they did."""
        self.pending_deletes: dict[str, Box] = {}
        """Deletes that failed (the API server away): sent again until they land."""
        self.infra_until = 0.0
        """No infrastructure fault from this moment (monotonic) on."""
        self.apiserver_back_at = 0.0
        """When (monotonic) the API server was last started again."""

    # -- set-up ------------------------------------------------------------------------

    async def open(self) -> None:
        self.setup = await cold_bench.open_setup(self.args.state_dir, prefix="chaos")
        self.kube = self.setup.kube
        self.namespace = self.setup.namespace
        self.runtime = f"{self.setup.language}:1.0"
        watcher = self.setup.watcher_settings
        watcher = watcher.model_copy(
            update={
                "service_name": "chaos-watcher",
                "http": watcher.http.model_copy(update={"port": controlplane.free_port()}),
                "watcher": watcher.watcher.model_copy(
                    update={"resync_period_seconds": self.args.resync_seconds}
                ),
            }
        )
        self.nats_settings = watcher.nats
        logs = self.setup.logs
        self.services["watcher"] = Service(
            name="watcher",
            module="lss_watcher",
            env=common_settings.environment_of(
                watcher, groups=("nats", "kube", "http", "consumer", "watcher")
            ),
            port=watcher.http.port,
            log=logs / f"{self.namespace}-watcher.log",
        )
        for replica in ("a", "b"):
            port = controlplane.free_port()
            rec = reconciler_settings.SandboxReconcilerSettings(
                service_name=f"chaos-reconciler-{replica}",
                nats=watcher.nats,
                kube=common_settings.KubeSettings(
                    kubeconfig=self.setup.kubeconfigs["sandbox_reconciler"]
                ),
                http=common_settings.HttpSettings(host="127.0.0.1", port=port),
                reconcile=reconciler_settings.ReconcileOptions(dns_timeout_seconds=1.0),
            )
            self.services[f"reconciler-{replica}"] = Service(
                name=f"reconciler-{replica}",
                module="lss_sandbox_reconciler",
                env=common_settings.environment_of(
                    rec,
                    groups=("nats", "kube", "http", "consumer", "sandbox", "reconcile", "warm"),
                ),
                port=port,
                log=logs / f"{self.namespace}-reconciler-{replica}.log",
            )
        for replica in ("a", "b"):
            port = controlplane.free_port()
            pool = pool_settings.PoolManagerSettings(
                service_name=f"chaos-pool-manager-{replica}",
                nats=watcher.nats,
                kube=common_settings.KubeSettings(
                    kubeconfig=self.setup.kubeconfigs["pool_manager"]
                ),
                http=common_settings.HttpSettings(host="127.0.0.1", port=port),
                pool=pool_settings.PoolOptions(
                    leaked_claim_grace_seconds=self.args.leaked_claim_grace_seconds,
                    leaked_claim_check_interval_seconds=self.args.leaked_claim_check_seconds,
                ),
            )
            self.services[f"pool-manager-{replica}"] = Service(
                name=f"pool-manager-{replica}",
                module="lss_pool_manager",
                env=common_settings.environment_of(
                    pool, groups=("nats", "kube", "http", "consumer", "pool")
                ),
                port=port,
                log=logs / f"{self.namespace}-pool-manager-{replica}.log",
            )
        if self.args.service_log_level:
            for service in self.services.values():
                service.env["LSS_LOG__LEVEL"] = self.args.service_log_level
        self.control_plane = self.setup.plat.control_plane
        self.kcm_log = self.setup.plat.state_dir / "logs" / "kube-controller-manager.log"
        self.kcm_log_start = self.kcm_log.stat().st_size if self.kcm_log.exists() else 0

        # The soak's own connection outlives nats-server restarts (nats-py's default gives up
        # after 60 attempts), without a traceback on stderr per failed attempt.
        async def quiet(error: Exception) -> None:
            self.soak_nats_errors += 1

        self.soak_nats_errors = 0
        self.nc = await nats.connect(
            self.setup.plat.nats_url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=quiet,
        )
        self.js = self.nc.jetstream()
        await topology.declare_streams(self.js, settings=watcher.nats)
        self.timeline.log(
            "setup",
            seed=self.args.seed,
            namespace=self.namespace,
            runtime=self.runtime,
            logs=str(logs),
            prefix=watcher.nats.subject_prefix,
        )

    async def start_services(self) -> None:
        # The consumers first (interest retention: hints published before a durable consumer
        # exists are not kept for it), then the watcher.
        for name, service in self.services.items():
            if name != "watcher":
                service.start()
        for name, service in self.services.items():
            if name != "watcher":
                await self._wait_ready(service)
        self.services["watcher"].start()
        await self._wait_ready(self.services["watcher"])
        self.timeline.log(
            "services started",
            pids={n: s.process.pid for n, s in self.services.items() if s.process},
        )

    async def _wait_ready(self, service: Service, *, timeout_seconds: float = 60) -> bool:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if await watcher_testing.readyz(f"http://127.0.0.1:{service.port}"):
                return True
            if not service.alive():
                return False
            await asyncio.sleep(0.1)
        return False

    async def create_pools(self) -> None:
        for name in POOLS:
            await self._create_pool(name)
        await asyncio.sleep(1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = await objects.list_objects(
                self.kube, resource=objects.WARM_POD, namespace=self.namespace
            )
            ready = Counter(
                (wp.get("spec") or {}).get("poolRef", {}).get("name")
                for wp in found.items
                if (wp.get("status") or {}).get("phase") == "Ready"
            )
            if all(ready[n] >= spec["minSize"] for n, spec in POOLS.items()):
                self.timeline.log("pools filled", ready=dict(ready))
                return
            await asyncio.sleep(1)
        raise RuntimeError("the pools did not fill in 120 s")

    async def _create_pool(self, name: str) -> None:
        spec = self.pool_spec[name]
        await objects.create_object(
            self.kube,
            resource=objects.WARM_POOL,
            namespace=self.namespace,
            body={
                "apiVersion": kinds.API_VERSION,
                "kind": "WarmPool",
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"runtime": self.runtime, **spec},
            },
        )
        self.timeline.log("pool created", pool=name, **spec)

    # -- background tasks --------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.timeline.log("background task failed", error=repr(task.exception()))

    async def monitor_processes(self) -> None:
        """A process that exits without having been killed here is a violation; it is
        started again so that the soak goes on."""
        while not self.stopping:
            for service in self.services.values():
                if service.killed or service.process is None or service.alive():
                    continue
                code = service.process.returncode
                tail = service.log.read_text(errors="replace").splitlines()[-25:]
                service.unexpected_exits.append(
                    {"t": self.timeline.now(), "returncode": code, "log_tail": tail}
                )
                self.timeline.log("UNEXPECTED EXIT", service=service.name, returncode=code)
                service.start()
            await self._check_platform()
            await asyncio.sleep(1)

    async def _check_platform(self) -> None:
        """A platform component that is down without having been stopped here (the
        controller manager, the scheduler or kwok after an API server outage, say) is
        recorded and started again: the soak is about the services, not the platform."""
        state_dir = self.setup.plat.state_dir
        for name in (NATS, *controlplane.ORDER):
            if name in self.infra_down:
                continue
            if processes.pid_of(name, state_dir=state_dir) is not None:
                continue
            tail = processes.tail(name, state_dir=state_dir, lines=15).splitlines()
            self.platform_exits.append({"t": self.timeline.now(), "component": name, "tail": tail})
            self.timeline.log("PLATFORM COMPONENT DOWN", component=name)
            self.infra_down.add(name)
            try:
                await asyncio.to_thread(self._start_component, name)
            except (RuntimeError, OSError) as error:
                self.timeline.log("platform restart failed", component=name, error=repr(error))
            finally:
                self.infra_down.discard(name)

    def _start_component(self, name: str) -> None:
        """Start a platform component again (same ports, same data) and wait until it
        serves."""
        if name == NATS:
            self.setup.plat.start_nats()
            self.setup.plat.wait_nats()
        else:
            self.control_plane.start_component(name)
            if name == APISERVER:
                self.control_plane.wait_apiserver()

    async def sample_safety(self) -> None:
        """Safety properties that must hold at every moment, checked every few seconds."""
        while not self.stopping:
            with contextlib.suppress(errors.LssError, OSError, TimeoutError):
                snap = await self.snapshot()
                nodes = await objects.list_objects(self.kube, resource=NODE)
                found = [*self._safety(snap), *self._node_problems(nodes.items)]
                for key, message, evidence in found:
                    seen = self.transient.setdefault(
                        key,
                        {
                            "message": message,
                            "first_t": self.timeline.now(),
                            "count": 0,
                            "evidence": evidence,
                        },
                    )
                    if seen["count"] == 0:
                        self.timeline.log("SAFETY", key=key, message=message)
                    seen["count"] += 1
                    seen["last_t"] = self.timeline.now()
            await asyncio.sleep(self.args.sample_seconds)

    def _node_problems(
        self, nodes: list[dict[str, Any]]
    ) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """A kwok node NotReady (its lease not renewed during an API server outage longer
        than the node grace period): the node lifecycle controller then marks every pod on
        it not Ready, and kwok never makes them Ready again — a platform artefact that fails
        invariants 1 and 5 for the rest of the run, reported as such."""
        for node in nodes:
            conditions = (node.get("status") or {}).get("conditions") or ()
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                yield (
                    f"platform:node-not-ready:{_name(node)}",
                    f"node {_name(node)} NotReady (its pods are marked not Ready)",
                    {},
                )

    def _safety(self, snap: Snapshot) -> Iterable[tuple[str, str, dict[str, Any]]]:
        on_pod: dict[str, list[str]] = defaultdict(list)
        for box in snap.sandboxes:
            status = box.get("status") or {}
            if status.get("phase") in ("Running", "Creating") and status.get("podName"):
                on_pod[status["podName"]].append(_name(box))
        for pod_name, holders in on_pod.items():
            if len(holders) > 1:
                yield f"pod-shared:{pod_name}", f"pod {pod_name} is status.podName of {holders}", {}
        for pod in snap.children["Pod"]:
            controllers = _controllers(pod)
            if len(controllers) > 1:
                yield (
                    f"two-controllers:{_name(pod)}",
                    "pod with two controllers",
                    {"pod": _excerpt(pod)},
                )
            labelled = (_meta(pod).get("labels") or {}).get(SANDBOX_UID)
            for ref in controllers:
                if ref.get("kind") == "Sandbox" and labelled and labelled != ref.get("uid"):
                    yield (
                        f"label-owner-mismatch:{_name(pod)}",
                        f"pod {_name(pod)} controlled by sandbox {ref.get('name')} but "
                        f"labelled with sandbox UID {labelled}",
                        {"pod": _excerpt(pod)},
                    )
        for pool in snap.pools:
            uid = _uid(pool)
            count = sum(
                1
                for wp in snap.warm_pods
                if uid in _owner_uids(wp) and not _meta(wp).get("deletionTimestamp")
            )
            self.pool_max_seen[_name(pool)] = max(self.pool_max_seen[_name(pool)], count)
            most = (pool.get("spec") or {}).get("maxSize") or 0
            if most and count > most:
                yield (
                    f"over-max:{_name(pool)}",
                    f"pool {_name(pool)}: {count} WarmPods, maxSize {most}",
                    {},
                )

    # -- actions -----------------------------------------------------------------------

    def _live(self) -> list[Box]:
        return [b for b in self.boxes.values() if b.deleted_at is None and b.uid]

    def _new_spec(self, flavour: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"runtime": self.runtime}
        if self.rng.random() < self.args.short_lifetime_ratio:
            spec["timeout"] = self.rng.randint(20, 90)
        else:
            spec["timeout"] = 3600
        if flavour == "high":
            spec["securityLevel"] = "high"
        elif flavour == "cold":
            spec["resources"] = {"cpu": self.rng.choice(["1", "750m", "2"])}
        elif flavour == "ingress":
            spec["networkAccess"] = {"ingress": True}
        elif flavour == "egress":
            spec["networkAccess"] = {
                "egress": [{"domain": "example.com", "ports": [{"port": 443}]}]
            }
        return spec

    async def create_box(self, *, delete_after: float | None = None) -> Box:
        self.serial += 1
        flavour = self.rng.choices(list(FLAVOURS), weights=list(FLAVOURS.values()))[0]
        box = Box(
            name=f"s{self.serial:04d}-{flavour}",
            flavour=flavour,
            spec=self._new_spec(flavour),
            created_at=self.timeline.now(),
        )
        self.boxes[box.name] = box
        try:
            created = await objects.create_object(
                self.kube,
                resource=objects.SANDBOX,
                namespace=self.namespace,
                body={
                    "apiVersion": kinds.API_VERSION,
                    "kind": "Sandbox",
                    "metadata": {"name": box.name, "namespace": self.namespace},
                    "spec": box.spec,
                },
            )
            box.uid = _uid(created)
        except errors.LssError as error:
            box.create_error = repr(error)
            if isinstance(error, errors.RetryableError):
                # The API server may have stored it before the connection went away.
                self.uncertain_creates[box.name] = box
            self.timeline.log("create failed", sandbox=box.name, error=repr(error))
            return box
        self.timeline.log(
            "created",
            sandbox=box.name,
            uid=box.uid,
            timeout=box.spec["timeout"],
        )
        if delete_after is not None:
            await asyncio.sleep(delete_after)
            await self.delete_box(box, why="right after create")
        return box

    async def delete_box(self, box: Box, *, why: str = "") -> None:
        box.deleted_at = self.timeline.now()
        try:
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(
                    self.kube, resource=objects.SANDBOX, name=box.name, namespace=self.namespace
                )
        except errors.LssError as error:
            # Decided: it is sent again until it lands (resolve_uncertain).
            self.pending_deletes[box.name] = box
            self.timeline.log("delete failed, will retry", sandbox=box.name, error=repr(error))
            return
        self.timeline.log("deleted", sandbox=box.name, uid=box.uid, why=why)

    async def resolve_uncertain(self) -> None:
        """Adopt the creates that landed although their request failed; send the failed
        deletes again. Raises (and keeps the rest) while the API server is still away.

        Called by the chaos loop and by the API server's restore task, which may overlap:
        one at a time (two passes over the same snapshot deleted one key twice: KeyError,
        and the run ended in its chaos phase)."""
        async with self._resolving:
            for name, box in list(self.uncertain_creates.items()):
                found = await objects.get_or_none(
                    self.kube, resource=objects.SANDBOX, name=name, namespace=self.namespace
                )
                self.uncertain_creates.pop(name, None)
                if found is not None and box.uid is None:
                    box.uid = _uid(found)
                    self.timeline.log("create landed despite its error", sandbox=name, uid=box.uid)
            for name, box in list(self.pending_deletes.items()):
                with contextlib.suppress(errors.NotFoundError):
                    await objects.delete_object(
                        self.kube, resource=objects.SANDBOX, name=name, namespace=self.namespace
                    )
                self.pending_deletes.pop(name, None)
                self.timeline.log("deleted", sandbox=name, uid=box.uid, why="retried")

    async def act_create(self) -> None:
        if len(self._live()) >= self.args.max_live:
            await self.act_delete()
            return
        await self.create_box()

    async def act_burst(self) -> None:
        if self.args.max_live - len(self._live()) < 10:
            await self.act_create()
            return
        self.timeline.log("burst of 10")
        await asyncio.gather(*(self.create_box() for _ in range(10)))

    async def act_burst_and_kill(self) -> None:
        """A burst (or, without room for one, 5 deletions) with a reconciler or a pool
        manager killed 0-300 ms into it: mid-claim, mid-creation, mid-refill, mid-release."""
        targets = [s for s in self.services.values() if s.name != "watcher"]
        victim = self.rng.choice(targets)
        after = self.rng.uniform(0, 0.3)

        async def kill_later() -> None:
            await asyncio.sleep(after)
            await self.act_kill(victim)

        if self.args.max_live - len(self._live()) >= 10:
            self.timeline.log("burst of 10 with a kill", service=victim.name)
            work: list[Awaitable[Any]] = [self.create_box() for _ in range(10)]
        else:
            live = self._live()
            chosen = self.rng.sample(live, min(5, len(live)))
            self.timeline.log("5 deletions with a kill", service=victim.name)
            work = [self.delete_box(b, why="deletions with a kill") for b in chosen]
        await asyncio.gather(kill_later(), *work)

    async def act_delete(self) -> None:
        live = self._live()
        if live:
            await self.delete_box(self.rng.choice(live), why="random")

    async def act_create_then_delete(self) -> None:
        await self.create_box(delete_after=self.rng.choice([0.0, 0.02, 0.1, 0.3, 1.0]))

    async def act_kill(self, victim: Service | None = None) -> None:
        up = [s for s in self.services.values() if s.alive() and not s.killed and not s.paused]
        if victim is not None:
            up = [victim] if victim in up else []
        if not up:
            return
        service = self.rng.choice(up)
        delay = round(self.rng.uniform(0, 5), 2)
        service.error_counters.update(await _scrape_errors(service.port))
        assert service.process is not None
        pid = service.process.pid
        service.killed = True
        service.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(service.process.wait)
        service.kills += 1
        self.timeline.log("kill -9", service=service.name, pid=pid, restart_in=delay)

        async def restart() -> None:
            await asyncio.sleep(delay)
            if self.stopping:
                return
            service.start()
            assert service.process is not None
            self.timeline.log("restarted", service=service.name, pid=service.process.pid)

        self._spawn(restart())

    # -- infrastructure faults ---------------------------------------------------------

    def _spawn_infra(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.infra_tasks.add(task)
        task.add_done_callback(self._infra_done)

    def _infra_done(self, task: asyncio.Task[Any]) -> None:
        self.infra_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.timeline.log("infrastructure task failed", error=repr(task.exception()))

    def _infra_allowed(self, component: str) -> bool:
        """Not while that component is still down from an earlier fault, not in the last
        ``--infra-quiet-seconds`` of the chaos phase, and an API server fault not within
        ``--apiserver-gap-seconds`` of its last restart: back-to-back outages keep kwok from
        renewing its node leases, the nodes go NotReady and the node lifecycle controller
        marks every pod not Ready, which kwok never undoes (a platform artefact)."""
        now = time.monotonic()
        if (
            component == APISERVER
            and now < self.apiserver_back_at + self.args.apiserver_gap_seconds
        ):
            return False
        return component not in self.infra_down and now < self.infra_until

    async def act_nats_fault(self) -> None:
        """``kill -9`` the nats-server; start it again (same store, same ports) 0-5 s later."""
        if not self._infra_allowed(NATS):
            await self.act_create()
            return
        delay = round(self.rng.uniform(0, self.args.infra_down_max_seconds), 2)
        state_dir = self.setup.plat.state_dir
        self.infra_down.add(NATS)
        pid = processes.pid_of(NATS, state_dir=state_dir)
        await asyncio.to_thread(processes.kill, NATS, state_dir=state_dir)
        fault = {"kind": "nats-kill-9", "t": self.timeline.now(), "pid": pid, "down_for": delay}
        self.infra_faults.append(fault)
        self.timeline.log("nats-server kill -9", pid=pid, restart_in=delay)
        self._spawn_infra(self._restore(NATS, fault, delay))

    async def act_apiserver_fault(self) -> None:
        """Stop kube-apiserver (SIGTERM, a graceful shutdown, or ``kill -9``); start it again
        0-5 s after it is gone."""
        if not self._infra_allowed(APISERVER):
            await self.act_create()
            return
        how = self.rng.choice(["SIGTERM", "SIGKILL"])
        delay = round(self.rng.uniform(0, self.args.infra_down_max_seconds), 2)
        state_dir = self.setup.plat.state_dir
        self.infra_down.add(APISERVER)
        pid = processes.pid_of(APISERVER, state_dir=state_dir)
        fault: dict[str, Any] = {
            "kind": f"apiserver-{how.lower()}",
            "t": self.timeline.now(),
            "pid": pid,
            "down_for": delay,
        }
        self.infra_faults.append(fault)
        self.timeline.log(f"kube-apiserver {how}", pid=pid, restart_in=delay)

        async def outage() -> None:
            # In the background: the other actions go on while it is away.
            began = time.monotonic()
            try:
                if how == "SIGKILL":
                    await asyncio.to_thread(processes.kill, APISERVER, state_dir=state_dir)
                else:
                    # The graceful shutdown: its listener closes at once, but the process
                    # may linger (it did for more than 30 s here): SIGKILL after 10 s.
                    await asyncio.to_thread(
                        processes.stop,
                        APISERVER,
                        state_dir=state_dir,
                        timeout_seconds=APISERVER_STOP_SECONDS,
                    )
            except OSError as error:
                self.timeline.log("kube-apiserver stop failed", error=repr(error))
            fault["stop_seconds"] = round(time.monotonic() - began, 2)
            self.timeline.log("kube-apiserver gone", pid=pid, stop_seconds=fault["stop_seconds"])
            await self._restore(APISERVER, fault, delay)

        self._spawn_infra(outage())

    async def _restore(self, component: str, fault: dict[str, Any], delay: float) -> None:
        """Start ``component`` again after ``delay``, then time how long the services take
        to be ready again (each by itself: nothing here touches them)."""
        try:
            await asyncio.sleep(delay)
            for attempt in range(1, 4):
                started = time.monotonic()
                try:
                    await asyncio.to_thread(self._start_component, component)
                    break
                except (RuntimeError, OSError) as error:
                    self.timeline.log(
                        "PLATFORM RESTART FAILED", component=component, error=repr(error)[:300]
                    )
                    if attempt == 3:
                        raise
                    await asyncio.sleep(5)
            fault["start_seconds"] = round(time.monotonic() - started, 2)
            fault["back_at"] = self.timeline.now()
            if component == APISERVER:
                self.apiserver_back_at = time.monotonic()
            self.timeline.log(
                f"{component} back",
                pid=processes.pid_of(component, state_dir=self.setup.plat.state_dir),
                down_seconds=round(fault["back_at"] - fault["t"], 2),
            )
        finally:
            self.infra_down.discard(component)
        recovered, overlapped = await self._wait_recovered()
        fault["services_ready_after"] = recovered
        if overlapped:
            # Another outage during the wait: the time counts that one too.
            fault["overlapped"] = sorted(overlapped)
        if recovered is None:
            not_ready = [
                s.name
                for s in self.services.values()
                if not await watcher_testing.readyz(f"http://127.0.0.1:{s.port}")
            ]
            failure = {**fault, "not_ready": not_ready}
            self.recovery_failures.append(failure)
            self.timeline.log("NOT RECOVERED", component=component, not_ready=not_ready)
        else:
            self.timeline.log("services ready again", after=component, seconds=recovered)
        if component == APISERVER:
            with contextlib.suppress(errors.LssError):
                await self.resolve_uncertain()

    async def _wait_recovered(self) -> tuple[float | None, set[str]]:
        """Seconds until every service that runs (not killed, not paused, not started
        since: a new process's own start-up is not a recovery) answers /readyz, or None
        after ``--recovery-seconds``; and the components down meanwhile."""
        began = time.monotonic()
        overlapped: set[str] = set()
        while time.monotonic() - began < self.args.recovery_seconds:
            overlapped |= self.infra_down & {NATS, APISERVER}
            waiting = [
                s
                for s in self.services.values()
                if s.alive()
                and not s.killed
                and not s.paused
                and s.started_at < began
                and not await watcher_testing.readyz(f"http://127.0.0.1:{s.port}")
            ]
            if not waiting and not self.infra_down & {NATS, APISERVER}:
                return round(time.monotonic() - began, 2), overlapped
            await asyncio.sleep(0.5)
        return None, overlapped

    async def act_pause(self) -> None:
        """SIGSTOP a service for 1-10 s, then SIGCONT (a GC pause, a starved CPU)."""
        up = [s for s in self.services.values() if s.alive() and not s.killed and not s.paused]
        if not up:
            return
        service = self.rng.choice(up)
        seconds = round(self.rng.uniform(1, self.args.pause_max_seconds), 2)
        process = service.process
        assert process is not None
        service.paused = True
        process.send_signal(signal.SIGSTOP)
        service.pauses += 1
        self.infra_faults.append(
            {"kind": "pause", "t": self.timeline.now(), "service": service.name, "for": seconds}
        )
        self.timeline.log("SIGSTOP", service=service.name, pid=process.pid, seconds=seconds)

        async def resume() -> None:
            try:
                await asyncio.sleep(seconds)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                service.paused = False
                self.timeline.log("SIGCONT", service=service.name, pid=process.pid)

        self._spawn_infra(resume())

    async def act_delete_child(self) -> None:
        what = self.rng.choice(["pod", "service", "deny-policy", "warm-pod"])
        if what == "warm-pod":
            found = await objects.list_objects(
                self.kube, resource=objects.WARM_POD, namespace=self.namespace
            )
            ready = [
                wp
                for wp in found.items
                if (wp.get("status") or {}).get("phase") == "Ready"
                and (wp.get("status") or {}).get("podName")
            ]
            if not ready:
                return
            wp = self.rng.choice(ready)
            pod = wp["status"]["podName"]
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(
                    self.kube, resource=objects.POD, name=pod, namespace=self.namespace
                )
            self.timeline.log("deleted by hand", kind="Pod", name=pod, warmpod=_name(wp))
            return
        live = self._live()
        if not live:
            return
        box = self.rng.choice(live)
        current = await objects.get_or_none(
            self.kube, resource=objects.SANDBOX, name=box.name, namespace=self.namespace
        )
        status = (current or {}).get("status") or {}
        if what == "pod":
            kind, resource, name = "Pod", objects.POD, status.get("podName")
        elif what == "service":
            endpoint = status.get("endpoint")
            kind, resource = "Service", objects.SERVICE
            name = endpoint.split(".")[0] if endpoint else None
        else:
            kind, resource = "NetworkPolicy", objects.NETWORK_POLICY
            name = sandbox_names.policy_name(box.name, policy=sandbox_names.Policy.DENY)
        if not name:
            return
        with contextlib.suppress(errors.NotFoundError):
            await objects.delete_object(
                self.kube, resource=resource, name=name, namespace=self.namespace
            )
        self.timeline.log("deleted by hand", kind=kind, name=name, sandbox=box.name)

    async def act_resize_pool(self) -> None:
        name = self.rng.choice(list(POOLS))
        spec = self.pool_spec[name]
        size = self.rng.randint(2, spec["maxSize"])
        with contextlib.suppress(errors.NotFoundError):
            await objects.patch_object(
                self.kube,
                resource=objects.WARM_POOL,
                name=name,
                namespace=self.namespace,
                body={"spec": {"minSize": size}},
            )
        spec["minSize"] = size
        self.timeline.log("pool resized", pool=name, minSize=size)

    async def act_recreate_pool(self) -> None:
        if self.pool_recreates >= self.args.pool_recreates or self.pool_recreate_task:
            await self.act_resize_pool()
            return
        self.pool_recreates += 1
        name = "std"
        deleted = False

        async def delete() -> None:
            nonlocal deleted
            with contextlib.suppress(errors.NotFoundError):
                await objects.delete_object(
                    self.kube, resource=objects.WARM_POOL, name=name, namespace=self.namespace
                )
            deleted = True
            self.timeline.log("pool deleted", pool=name)

        async def recreate() -> None:
            # Every step is retried while the API server is away (a step whose request
            # failed may have landed: a second delete is a 404, a second create a 409).
            while True:
                try:
                    if not deleted:
                        await delete()
                    found = await objects.get_or_none(
                        self.kube, resource=objects.WARM_POOL, name=name, namespace=self.namespace
                    )
                    if found is None:
                        break
                except errors.RetryableError as error:
                    self.timeline.log("pool re-create: retrying", pool=name, error=repr(error))
                await asyncio.sleep(2)
            self.timeline.log("pool gone", pool=name)
            while True:
                try:
                    await self._create_pool(name)
                    return
                except errors.AlreadyExistsError:
                    self.timeline.log("pool re-created (its create landed before)", pool=name)
                    return
                except errors.RetryableError as error:
                    self.timeline.log("pool re-create: retrying", pool=name, error=repr(error))
                await asyncio.sleep(2)

        try:
            await delete()
        finally:
            self.pool_recreate_task = asyncio.ensure_future(recreate())

    async def chaos(self) -> None:
        actions: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (self.act_create, 25),
            (self.act_burst, 3),
            (self.act_burst_and_kill, 3),
            (self.act_delete, 14),
            (self.act_create_then_delete, 8),
            (self.act_kill, 9),
            (self.act_delete_child, 12),
            (self.act_resize_pool, 4),
            (self.act_recreate_pool, 1),
            (self.act_nats_fault, INFRA_WEIGHTS["nats"] if self.args.nats_faults else 0),
            (
                self.act_apiserver_fault,
                INFRA_WEIGHTS["apiserver"] if self.args.apiserver_faults else 0,
            ),
            (self.act_pause, INFRA_WEIGHTS["pause"] if self.args.pauses else 0),
        ]
        # The first recreate no earlier than a third of the way in: claims exist by then.
        deadline = time.monotonic() + self.args.chaos_seconds
        recreate_from = time.monotonic() + self.args.chaos_seconds / 3
        self.infra_until = deadline - self.args.infra_quiet_seconds
        while time.monotonic() < deadline:
            if (self.uncertain_creates or self.pending_deletes) and APISERVER not in (
                self.infra_down
            ):
                with contextlib.suppress(errors.LssError):
                    await self.resolve_uncertain()
            action = self.rng.choices([a for a, _ in actions], weights=[w for _, w in actions])[0]
            if action == self.act_recreate_pool and time.monotonic() < recreate_from:
                action = self.act_create
            self.actions[action.__name__] += 1
            try:
                await action()
            except (errors.LssError, OSError, TimeoutError) as error:
                self.timeline.log("action failed", action=action.__name__, error=repr(error))
            await asyncio.sleep(self.rng.uniform(0.2, 2.5))

    # -- convergence and the check -----------------------------------------------------

    async def snapshot(self) -> Snapshot:
        async def listed(resource: objects.ApiResource) -> list[dict[str, Any]]:
            found = await objects.list_objects(
                self.kube, resource=resource, namespace=self.namespace
            )
            return list(found.items)

        kinds_order = list(CHILD_RESOURCES)
        results = await asyncio.gather(
            listed(objects.SANDBOX),
            listed(objects.WARM_POOL),
            listed(objects.WARM_POD),
            *(listed(CHILD_RESOURCES[k]) for k in kinds_order),
        )
        return Snapshot(
            taken_at=_utc_now(),
            sandboxes=results[0],
            pools=results[1],
            warm_pods=results[2],
            children=dict(zip(kinds_order, results[3:], strict=True)),
        )

    async def last_record(self, name: str) -> messages.StatusRecord | None:
        subject = subjects.status_subject(
            "sandbox",
            namespace=self.namespace,
            name=name,
            prefix=self.nats_settings.subject_prefix,
        )
        try:
            msg = await self.js.get_last_msg(self.nats_settings.status_stream, subject)
        except js_errors.NotFoundError:
            return None
        if msg.data is None:
            return None
        record: messages.StatusRecord = codec.decode(msg.data, message_type=messages.StatusRecord)
        return record

    async def check(self, snap: Snapshot) -> list[Violation]:
        found: list[Violation] = []

        def fail(invariant: str, subject: str, message: str, **evidence: Any) -> None:
            found.append(Violation(invariant, subject, message, evidence))

        boxes_by_name = {_name(b): b for b in snap.sandboxes}
        uids = {_uid(b): b for b in snap.sandboxes}
        warm_by_uid = {_uid(w): w for w in snap.warm_pods}
        pools_by_uid = {_uid(p): p for p in snap.pools}
        owners_alive = set(uids) | set(warm_by_uid) | set(pools_by_uid)
        carriers: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for kind, item in snap.all_objects():
            for uid in _owner_uids(item) | {
                (_meta(item).get("labels") or {}).get(SANDBOX_UID, ""),
                ((item.get("status") or {}).get("assignedTo") or "") if kind == "WarmPod" else "",
            }:
                if uid:
                    carriers[uid].append((kind, item))
        pods = {_name(p): p for p in snap.children["Pod"]}
        services = {_name(s): s for s in snap.children["Service"]}
        policies = {_name(p): p for p in snap.children["NetworkPolicy"]}

        # 1, 4: live sandboxes.
        for box in self.boxes.values():
            if box.deleted_at is not None or not box.uid:
                continue
            obj = boxes_by_name.get(box.name)
            if obj is None or _uid(obj) != box.uid:
                fail("1", box.name, "a sandbox never deleted is gone", sandbox=_excerpt(obj))
                continue
            status = obj.get("status") or {}
            phase = status.get("phase")
            start = status.get("startTime")
            left: float | None = None
            if start:
                left = (
                    _parse_time(start)
                    + datetime.timedelta(seconds=box.spec["timeout"])
                    - snap.taken_at
                ).total_seconds()
            everything = carriers.get(box.uid, [])
            own = [(k, o) for k, o in everything if k != "WarmPod"]
            if left is not None and left < -EXPIRY_SLACK_SECONDS:
                if phase != "Terminated":
                    fail(
                        "1",
                        box.name,
                        f"expired {-left:.0f} s ago but phase {phase}",
                        sandbox=_excerpt(obj),
                    )
                if everything:
                    fail(
                        "1",
                        box.name,
                        f"expired (phase {phase}) but objects still carry its UID: "
                        + ", ".join(f"{k}/{_name(o)}" for k, o in everything),
                        sandbox=_excerpt(obj),
                        children=[_excerpt(o) for _, o in everything],
                    )
                continue
            if left is not None and left < EXPIRY_SLACK_SECONDS:
                continue  # expiring around now: either answer is right
            if phase != "Running":
                fail("1", box.name, f"phase {phase}, not Running", sandbox=_excerpt(obj))
                continue
            if FINALIZER not in (_meta(obj).get("finalizers") or ()):
                fail("1", box.name, "Running without its finalizer", sandbox=_excerpt(obj))
            pod = pods.get(status.get("podName") or "")
            if pod is None:
                fail(
                    "1",
                    box.name,
                    f"status.podName {status.get('podName')!r} names no pod",
                    sandbox=_excerpt(obj),
                )
            else:
                problems = []
                if _meta(pod).get("deletionTimestamp"):
                    problems.append("being deleted")
                if not _pod_ready(pod):
                    problems.append("not Ready")
                refs = _controllers(pod)
                if [r.get("uid") for r in refs] != [box.uid]:
                    problems.append(f"controllers {[(r.get('kind'), r.get('name')) for r in refs]}")
                if (_meta(pod).get("labels") or {}).get(SANDBOX_UID) != box.uid:
                    problems.append("not labelled with the sandbox's UID")
                if problems:
                    fail(
                        "1",
                        box.name,
                        f"pod {_name(pod)}: " + "; ".join(problems),
                        sandbox=_excerpt(obj),
                        pod=_excerpt(pod),
                    )
            its_pods = [o for k, o in own if k == "Pod"]
            if len(its_pods) > 1:
                fail(
                    "1",
                    box.name,
                    f"{len(its_pods)} pods carry its UID: {[_name(p) for p in its_pods]}",
                    pods=[_excerpt(p) for p in its_pods],
                )
            deny = policies.get(
                sandbox_names.policy_name(box.name, policy=sandbox_names.Policy.DENY)
            )
            selects = ((deny or {}).get("spec") or {}).get("podSelector", {}).get("matchLabels")
            if deny is None or selects != {SANDBOX_UID: box.uid}:
                fail("4", box.name, "no deny policy selecting its pod", policy=_excerpt(deny))
            if (box.spec.get("networkAccess") or {}).get("ingress"):
                name = sandbox_names.policy_name(box.name, policy=sandbox_names.Policy.INGRESS)
                if name not in policies:
                    fail("4", box.name, f"ingress asked for, no policy {name}")
            endpoint = status.get("endpoint")
            service = services.get(endpoint.split(".")[0]) if endpoint else None
            if service is None:
                fail(
                    "4",
                    box.name,
                    f"status.endpoint {endpoint!r} names no Service",
                    sandbox=_excerpt(obj),
                )
            elif not render_owner.is_owned_by(
                service,
                owner=render_owner.Owner(
                    name=box.name,
                    namespace=self.namespace,
                    uid=box.uid,
                    child_namespace=self.namespace,
                ),
            ):
                fail(
                    "4",
                    box.name,
                    f"Service {_name(service)} is not the sandbox's",
                    service=_excerpt(service),
                )
            ref = (status.get("warmPodRef") or {}).get("name")
            if ref and status.get("podName") == sandbox_names.pod_name(box.name):
                # On a pod of its own (its warm pod was replaced): warmPodRef is the record
                # of how it started; the claim must have been given back (release_replaced).
                warm = next((w for w in snap.warm_pods if _name(w) == ref), None)
                if warm is not None and (warm.get("status") or {}).get("assignedTo") == box.uid:
                    fail(
                        "2",
                        box.name,
                        f"runs on its own pod but its replaced warm pod's WarmPod {ref} "
                        "is still Assigned to it",
                        warm_pod=_excerpt(warm),
                    )
            elif ref:
                warm = next((w for w in snap.warm_pods if _name(w) == ref), None)
                if warm is None or (warm.get("status") or {}).get("assignedTo") != box.uid:
                    fail(
                        "2",
                        box.name,
                        f"warmPodRef {ref} is not a WarmPod assigned to it",
                        warm_pod=_excerpt(warm),
                    )

        # 3: deleted sandboxes.
        for box in self.boxes.values():
            if box.deleted_at is None or not box.uid:
                continue
            obj = uids.get(box.uid)
            if obj is not None:
                fail(
                    "3",
                    box.name,
                    f"deleted at t={box.deleted_at} but still there",
                    sandbox=_excerpt(obj),
                )
            left_over = carriers.get(box.uid, [])
            if left_over:
                fail(
                    "3",
                    box.name,
                    "deleted, but objects still carry its UID: "
                    + ", ".join(f"{k}/{_name(o)}" for k, o in left_over),
                    objects=[_excerpt(o) for _, o in left_over],
                )

        # 2: WarmPods and owners.
        assigned: dict[str, list[str]] = defaultdict(list)
        for warm in snap.warm_pods:
            status = warm.get("status") or {}
            if status.get("phase") != "Assigned":
                continue
            to = status.get("assignedTo") or ""
            assigned[to].append(_name(warm))
            holder = uids.get(to)
            if holder is None:
                fail(
                    "2",
                    _name(warm),
                    f"Assigned to {to}, which is no sandbox",
                    warm_pod=_excerpt(warm),
                    sandbox=self._box_by_uid(to),
                )
            elif ((holder.get("status") or {}).get("warmPodRef") or {}).get("name") != _name(warm):
                fail(
                    "2",
                    _name(warm),
                    f"Assigned to {_name(holder)}, which does not reference it",
                    warm_pod=_excerpt(warm),
                    sandbox=_excerpt(holder),
                )
        for to, warm_names in assigned.items():
            if len(warm_names) > 1:
                fail("2", to, f"sandbox UID {to} holds several WarmPods: {warm_names}")
        for kind, item in snap.all_objects():
            if kind == "ServiceAccount" and _name(item) == "default":
                continue
            refs = _meta(item).get("ownerReferences") or []
            if len(_controllers(item)) > 1:
                fail("2", f"{kind}/{_name(item)}", "two controllers", object=_excerpt(item))
            if not refs:
                if kind == "Pod" or (_meta(item).get("labels") or {}).get(labels.APP):
                    fail("2", f"{kind}/{_name(item)}", "no owner", object=_excerpt(item))
            elif (
                kind == "Service"
                and (_meta(item).get("labels") or {}).get("llmsafespace.dev/component")
                == "warm-service"
                and [r.get("kind") for r in _meta(item).get("ownerReferences") or []] == ["WarmPod"]
                and not _owner_uids(item) & owners_alive
            ):
                # The pool manager leaves a retired WarmPod's Service to the garbage collector
                # (retire.py; its role cannot delete Services). The collector misses it when
                # the WarmPod was deleted around an API server restart and its slot re-created
                # under the same name before the collector's re-list (its informer, keyed by
                # name, sees an update, not a deletion). Known and open: pool-manager.md.
                fail(
                    "platform",
                    f"{kind}/{_name(item)}",
                    "warm Service of a deleted WarmPod not garbage-collected (known: a "
                    "re-created slot hid the deletion from the collector)",
                    object=_excerpt(item),
                )
            elif not _owner_uids(item) & owners_alive:
                fail(
                    "2",
                    f"{kind}/{_name(item)}",
                    "every owner is gone (not garbage-collected)",
                    object=_excerpt(item),
                )

        # 5: pools.
        for pool in snap.pools:
            if _meta(pool).get("deletionTimestamp"):
                held = [w for w in snap.warm_pods if _uid(pool) in _owner_uids(w)]
                blocking = [
                    w
                    for w in held
                    if (w.get("status") or {}).get("assignedTo") in uids
                    and (w.get("status") or {}).get("phase") == "Assigned"
                ]
                # By design (docs/pool-manager.md, Deletion) a pool waits, DeletionBlocked,
                # while any of its WarmPods is Assigned to a sandbox, and deletes nothing
                # meanwhile: its Ready WarmPods stay (claimable) until the last claim ends.
                # Anything else should have let it go.
                if not blocking:
                    fail("5", _name(pool), "pool still being deleted", pool=_excerpt(pool))
                elif not any(
                    c.get("reason") == "DeletionBlocked"
                    for c in (pool.get("status") or {}).get("conditions") or ()
                ):
                    fail(
                        "5",
                        _name(pool),
                        f"deletion held by {len(blocking)} Assigned WarmPods, but its status "
                        "does not say DeletionBlocked",
                        pool=_excerpt(pool),
                    )
                continue
            spec = pool.get("spec") or {}
            mine = [w for w in snap.warm_pods if _uid(pool) in _owner_uids(w)]
            phases = Counter((w.get("status") or {}).get("phase") for w in mine)
            most = spec.get("maxSize") or 0
            want = spec.get("minSize", 0)
            if most:
                want = min(want, most - phases["Assigned"])
            if most and len(mine) > most:
                fail("5", _name(pool), f"{len(mine)} WarmPods, maxSize {most}")
            if phases["Ready"] != want or len(mine) != phases["Ready"] + phases["Assigned"]:
                fail(
                    "5",
                    _name(pool),
                    f"WarmPods by phase {dict(phases)}; want {want} Ready beside "
                    f"{phases['Assigned']} Assigned (minSize {spec.get('minSize')}, "
                    f"maxSize {most})",
                    pool=_excerpt(pool),
                )
            status = pool.get("status") or {}
            counted = (
                status.get("availablePods", 0),
                status.get("assignedPods", 0),
                status.get("pendingPods", 0),
            )
            real = (phases["Ready"], phases["Assigned"], phases["Pending"] + phases[None])
            if counted != real:
                fail(
                    "5",
                    _name(pool),
                    f"status counts (available, assigned, pending) {counted}, objects {real}",
                    pool=_excerpt(pool),
                )
            for warm in mine:
                wstatus = warm.get("status") or {}
                if wstatus.get("phase") != "Ready":
                    continue
                pod = pods.get(wstatus.get("podName") or "")
                if (
                    pod is None
                    or not _pod_ready(pod)
                    or [r.get("uid") for r in _controllers(pod)] != [_uid(warm)]
                ):
                    fail(
                        "5",
                        _name(warm),
                        "Ready WarmPod without a Ready pod it controls",
                        warm_pod=_excerpt(warm),
                        pod=_excerpt(pod),
                    )
        for warm in snap.warm_pods:
            if not _owner_uids(warm) & set(pools_by_uid):
                fail("5", _name(warm), "WarmPod of no existing pool", warm_pod=_excerpt(warm))
        for name in POOLS:
            if not any(_name(p) == name for p in snap.pools):
                fail("5", name, "pool missing (deleted, not re-created)")

        # 6: status records.
        for box in self.boxes.values():
            if not box.uid:
                continue
            record = await self.last_record(box.name)
            obj = uids.get(box.uid)
            shown = msgspec_dict(record)
            if obj is None:
                if record is not None and not record.deleted:
                    fail(
                        "6",
                        box.name,
                        f"gone, but its last status record says phase {record.phase} (not deleted)",
                        record=shown,
                    )
                continue
            status = obj.get("status") or {}
            if record is None:
                fail("6", box.name, "no status record", sandbox=_excerpt(obj))
                continue
            if (
                record.uid != box.uid
                or record.deleted
                or record.phase != status.get("phase")
                or record.pod_name != status.get("podName")
            ):
                fail(
                    "6",
                    box.name,
                    f"record phase {record.phase} pod {record.pod_name} deleted "
                    f"{record.deleted}; API server phase {status.get('phase')} pod "
                    f"{status.get('podName')}",
                    record=shown,
                    sandbox=_excerpt(obj),
                )

        # 7: processes.
        for process in self.services.values():
            for exit_ in process.unexpected_exits:
                fail(
                    "7",
                    process.name,
                    f"exited on its own (code {exit_['returncode']}) at t={exit_['t']}",
                    log_tail=exit_["log_tail"],
                )

        # 8: every service recovered from the outages by itself: running, and ready.
        for process in self.services.values():
            if not process.alive() or process.paused:
                fail("8", process.name, "not running (or still stopped) at the end")
            elif not await watcher_testing.readyz(f"http://127.0.0.1:{process.port}"):
                tail = process.log.read_text(errors="replace").splitlines()[-10:]
                fail("8", process.name, "running but not ready (/readyz)", log_tail=tail)
        return found

    def nodes_lost(self) -> list[str]:
        """The controller manager's log lines of this run saying nodes went NotReady (and
        their pods were marked not Ready)."""
        if not self.kcm_log.exists():
            return []
        with self.kcm_log.open("rb") as log:
            log.seek(self.kcm_log_start)
            text = log.read().decode(errors="replace")
        return [
            line[:300]
            for line in text.splitlines()
            if "Nodes are not-Ready" in line or "mark all pods NotReady" in line
        ]

    def _box_by_uid(self, uid: str) -> dict[str, Any] | None:
        for box in self.boxes.values():
            if box.uid == uid:
                return {
                    "name": box.name,
                    "created_at": box.created_at,
                    "deleted_at": box.deleted_at,
                }
        return None

    async def converge(self) -> tuple[list[Violation], Snapshot, float]:
        began = time.monotonic()
        for task in list(self.background):
            with contextlib.suppress(Exception):
                await task
        # The platform back and every paused process continued before the clock starts.
        while self.infra_tasks:
            await asyncio.gather(*list(self.infra_tasks), return_exceptions=True)
        for service in self.services.values():
            if not service.alive():
                service.start()
                self.timeline.log("started for convergence", service=service.name)
        for service in self.services.values():
            if not await self._wait_ready(service, timeout_seconds=self.args.recovery_seconds):
                self.timeline.log("not ready", service=service.name)
        resolve_until = time.monotonic() + 60
        while self.uncertain_creates or self.pending_deletes:
            try:
                await self.resolve_uncertain()
            except errors.LssError as error:
                if time.monotonic() > resolve_until:
                    raise
                self.timeline.log("resolving failed creates/deletes", error=repr(error))
                await asyncio.sleep(2)
        # A pool re-create still waiting for its predecessor goes on meanwhile: a pool whose
        # deletion is held by Assigned WarmPods of live sandboxes (DeletionBlocked) waits
        # for them by design, and the check accepts it.
        started = time.monotonic()
        self.timeline.log("converging from here", waited_for_recovery=round(started - began, 1))
        deadline = started + self.args.converge_seconds
        clean = 0
        while True:
            try:
                snap = await self.snapshot()
                violations = await self.check(snap)
            except (errors.LssError, OSError, TimeoutError) as error:
                if time.monotonic() >= deadline:
                    raise
                self.timeline.log("convergence check failed", error=repr(error))
                await asyncio.sleep(5)
                continue
            self.timeline.log(
                "convergence check",
                violations=len(violations),
                by_invariant=dict(Counter(v.invariant for v in violations)),
            )
            if not self.first_check:
                self.first_check = [
                    f"[{v.invariant}] {v.subject}: {v.message}" for v in violations
                ] or ["none"]
            # A service's exit on its own (7) is history: it never heals, and says nothing
            # about whether the state converged.
            settled = all(v.invariant in ("7", "platform") for v in violations)
            clean = clean + 1 if settled else 0
            if clean == 1 and self.first_clean_at is None:
                self.first_clean_at = time.monotonic() - started
            if clean >= 2 or time.monotonic() >= deadline:
                return violations, snap, time.monotonic() - started
            await asyncio.sleep(10)

    # -- evidence and the end ----------------------------------------------------------

    def log_lines(self, needles: list[str], *, limit: int = 30) -> list[str]:
        """Service log lines naming any of ``needles``, the last ``limit`` of them."""
        matches: list[tuple[str, str]] = []
        for service in self.services.values():
            if not service.log.exists():
                continue
            for line in service.log.read_text(errors="replace").splitlines():
                if any(n and n in line for n in needles):
                    matches.append((service.name, line))
        return [f"{name}: {line[:600]}" for name, line in matches[-limit:]]

    def log_summary(self) -> dict[str, int]:
        """ERROR and WARNING lines of the services' logs, counted by service, message,
        error (names and UIDs blanked) and the innermost frames of the traceback."""
        counted: Counter[str] = Counter()
        blank = re.compile(r"s\d{4}-[a-z]+|[0-9a-f]{8}-[0-9a-f-]{27}|(std|high)-\d+(-[0-9a-f]{8})?")
        for service in self.services.values():
            if not service.log.exists():
                continue
            for line in service.log.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") not in ("ERROR", "WARNING"):
                    continue
                frames = re.findall(
                    r'File "([^"]+)", line (\d+), in (\w+)', entry.get("traceback") or ""
                )
                where = " <- ".join(
                    f"{path.rsplit('/', 1)[-1]}:{line_no}:{function}"
                    for path, line_no, function in reversed(frames[-3:])
                )
                error = blank.sub("X", str(entry.get("error") or ""))[:140]
                key = f"{service.name} {entry['level']} {entry.get('message')!r} {error} {where}"
                counted[key.strip()] += 1
        return dict(counted.most_common())

    async def stop(self) -> dict[str, Any]:
        self.stopping = True
        for task in list(self.background):
            task.cancel()
        if self.pool_recreate_task is not None:
            self.pool_recreate_task.cancel()
        # Platform restarts and SIGCONTs are waited for, never cancelled.
        if self.infra_tasks:
            await asyncio.wait(list(self.infra_tasks), timeout=180)
        for service in self.services.values():
            if service.paused and service.process is not None and service.alive():
                service.process.send_signal(signal.SIGCONT)
                service.paused = False
        for name in (NATS, APISERVER):
            if processes.pid_of(name, state_dir=self.setup.plat.state_dir) is None:
                self.timeline.log("platform component down at the end: starting", component=name)
                with contextlib.suppress(RuntimeError, OSError):
                    await asyncio.to_thread(self._start_component, name)
        codes: dict[str, Any] = {}
        for service in self.services.values():
            service.error_counters.update(await _scrape_errors(service.port))
        for service in self.services.values():
            if service.process is not None and service.alive():
                service.process.terminate()
        for service in self.services.values():
            if service.process is None:
                continue
            try:
                codes[service.name] = await asyncio.to_thread(service.process.wait, 30)
            except subprocess.TimeoutExpired:
                service.process.kill()
                codes[service.name] = f"killed after 30 s: {service.process.wait()}"
        return codes

    async def clean_up(self) -> None:
        for stream in (self.nats_settings.events_stream, self.nats_settings.status_stream):
            with contextlib.suppress(Exception):
                await self.js.delete_stream(stream)
        with contextlib.suppress(Exception):
            await self.nc.close()
        await warmpods.delete_namespace(self.kube, self.namespace)
        with contextlib.suppress(Exception):
            await objects.delete_object(
                self.kube, resource=objects.RUNTIME_ENVIRONMENT, name=self.setup.runtime_name
            )
        await self.setup.kube_api.close()


def msgspec_dict(record: messages.StatusRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    data: dict[str, Any] = json.loads(codec.encode(record))
    data.pop("conditions", None)
    return data


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chaos = Chaos(args)
    await chaos.open()
    violations: list[Violation] = []
    result: dict[str, Any] = {}
    try:
        await chaos.start_services()
        await chaos.create_pools()
        monitor = asyncio.ensure_future(chaos.monitor_processes())
        sampler = asyncio.ensure_future(chaos.sample_safety())
        chaos.timeline.log("chaos phase", seconds=args.chaos_seconds)
        await chaos.chaos()
        chaos.timeline.log("convergence phase", seconds=args.converge_seconds)
        violations, snap, converge_seconds = await chaos.converge()
        chaos.stopping = True
        for task in (monitor, sampler):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        dump = pathlib.Path(f"/tmp/chaos-dump-{args.seed}.json")
        text = json.dumps(dataclasses.asdict(snap), default=str, indent=1)
        await asyncio.to_thread(dump.write_text, text)
        for violation in violations:
            needles = [violation.subject]
            box = chaos.boxes.get(violation.subject)
            if box is not None and box.uid:
                needles.append(box.uid)
            violation.evidence["log_lines"] = chaos.log_lines(needles)
            violation.evidence["timeline"] = [
                e
                for e in chaos.timeline.events
                if violation.subject in json.dumps(e)
                or (box is not None and box.uid and box.uid in json.dumps(e))
            ]
        for key, seen in chaos.transient.items():
            invariant = (
                "5"
                if key.startswith("over-max")
                else "platform"
                if key.startswith("platform:")
                else "safety"
            )
            violations.append(
                Violation(
                    invariant,
                    key,
                    f"seen {seen['count']} time(s) during the run, t={seen['first_t']}"
                    f"..{seen.get('last_t')}: {seen['message']}",
                    seen["evidence"],
                )
            )
        for failure in chaos.recovery_failures:
            violations.append(
                Violation(
                    "8",
                    f"recovery:{failure['kind']}@t={failure['t']}",
                    f"services {failure['not_ready']} not ready {args.recovery_seconds:.0f} s "
                    "after the platform was back",
                    {"fault": failure},
                )
            )
        lost = chaos.nodes_lost()
        if lost:
            violations.append(
                Violation(
                    "platform",
                    "nodes",
                    "nodes went NotReady during the run (their leases not renewed while the "
                    "API server was away): the node lifecycle controller marked their pods "
                    "not Ready and kwok never makes them Ready again, so invariants 1 and 5 "
                    "fail on those pods for a reason outside the services",
                    {"kube_controller_manager": lost[:20]},
                )
            )
        for exit_ in chaos.platform_exits:
            violations.append(
                Violation(
                    "platform",
                    exit_["component"],
                    f"platform component down at t={exit_['t']} without a fault (restarted)",
                    {"log_tail": exit_["tail"]},
                )
            )
        result = {
            "converge_seconds": round(converge_seconds, 1),
            "first_clean_check_seconds": (
                None if chaos.first_clean_at is None else round(chaos.first_clean_at, 1)
            ),
            "dump": str(dump),
        }
    finally:
        codes = await chaos.stop()
        chaos.timeline.log("stopped", return_codes=codes)
        for name, code in codes.items():
            if code not in (0, -signal.SIGTERM):
                violations.append(
                    Violation("7", name, f"exit code {code} after SIGTERM at the end")
                )
        await chaos.clean_up()
        if not args.keep_platform:
            await asyncio.to_thread(chaos.setup.plat.down)
            chaos.timeline.log("platform stopped", state_dir=args.state_dir)
        chaos.timeline.close()
    boxes = list(chaos.boxes.values())
    return {
        "when": _utc_now().isoformat(timespec="seconds"),
        "seed": args.seed,
        "parameters": {k: v for k, v in vars(args).items() if k != "out"},
        "namespace": chaos.namespace,
        "logs": str(chaos.setup.logs),
        "timeline": f"/tmp/chaos-timeline-{args.seed}.jsonl",
        "wall_seconds": chaos.timeline.now(),
        "actions": dict(chaos.actions),
        "sandboxes": {
            "created": sum(1 for b in boxes if b.uid),
            "create_failed": sum(1 for b in boxes if b.create_error),
            "deleted": sum(1 for b in boxes if b.deleted_at is not None and b.uid),
            "by_flavour": dict(Counter(b.flavour for b in boxes)),
            "short_lifetime": sum(1 for b in boxes if b.spec["timeout"] < 3600),
        },
        "kills": {s.name: s.kills for s in chaos.services.values()},
        "pauses": {s.name: s.pauses for s in chaos.services.values()},
        "infra_faults": dict(Counter(f["kind"] for f in chaos.infra_faults)),
        "infra_fault_log": chaos.infra_faults,
        "create_errors_adopted": sum(1 for b in boxes if b.create_error and b.uid),
        "starts": {s.name: s.starts for s in chaos.services.values()},
        "error_counters": {
            s.name: dict(sorted(s.error_counters.items())) for s in chaos.services.values()
        },
        "pool_max_seen": dict(chaos.pool_max_seen),
        "log_warnings_and_errors": chaos.log_summary(),
        "first_convergence_check": chaos.first_check,
        **result,
        "violations": [v.as_dict() for v in violations],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--state-dir", default="/tmp/lss-chaos")
    parser.add_argument("--chaos-seconds", type=float, default=600.0)
    parser.add_argument("--converge-seconds", type=float, default=180.0)
    parser.add_argument("--max-live", type=int, default=24, help="sandboxes not deleted, at most")
    parser.add_argument("--short-lifetime-ratio", type=float, default=0.25)
    parser.add_argument("--pool-recreates", type=int, default=1)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument(
        "--resync-seconds", type=float, default=60.0, help="the watcher's resync period"
    )
    parser.add_argument("--leaked-claim-grace-seconds", type=float, default=60.0)
    parser.add_argument("--leaked-claim-check-seconds", type=float, default=20.0)
    parser.add_argument(
        "--keep-platform", action="store_true", help="leave the platform running at the end"
    )
    parser.add_argument(
        "--service-log-level",
        default=None,
        help="the services' log level (LSS_LOG__LEVEL), e.g. DEBUG to follow every request",
    )
    parser.add_argument(
        "--no-nats-faults",
        dest="nats_faults",
        action="store_false",
        help="never kill -9 the nats-server",
    )
    parser.add_argument(
        "--no-apiserver-faults",
        dest="apiserver_faults",
        action="store_false",
        help="never stop the kube-apiserver",
    )
    parser.add_argument(
        "--no-pauses", dest="pauses", action="store_false", help="never SIGSTOP a service"
    )
    parser.add_argument(
        "--infra-down-max-seconds",
        type=float,
        default=5.0,
        help="a stopped nats-server or kube-apiserver is started again 0..this later",
    )
    parser.add_argument("--pause-max-seconds", type=float, default=10.0)
    parser.add_argument(
        "--infra-quiet-seconds",
        type=float,
        default=30.0,
        help="no nats-server or kube-apiserver fault in the last seconds of the chaos phase",
    )
    parser.add_argument(
        "--apiserver-gap-seconds",
        type=float,
        default=45.0,
        help="no API server fault sooner than this after its last restart (node leases)",
    )
    parser.add_argument(
        "--recovery-seconds",
        type=float,
        default=120.0,
        help="after a platform restart every service must be ready again within this",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/chaos-result.json"))
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    print(f"seed {args.seed}", flush=True)
    results = asyncio.run(run(args))
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "violations"}, indent=2))
    print(f"\n{len(results['violations'])} violation(s), seed {args.seed}")
    for violation in results["violations"]:
        print(f"- [{violation['invariant']}] {violation['subject']}: {violation['message']}")
    print(f"results written to {args.out}")
    return 1 if results["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
