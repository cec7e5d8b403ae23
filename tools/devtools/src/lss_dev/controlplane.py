"""The local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, as real processes, bootstrapped with our CRDs and kwok nodes.

What is real: the apiserver (RBAC authorization, the default admission plugins incl.
PodSecurity and ServiceAccount), the scheduler placing pods on nodes, the controller-manager
(garbage collector, service-account and token controllers, ...). What is simulated: nodes and
the container runtime — kwok makes scheduled pods Running and Ready with an IP and keeps node
leases fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from lss_dev import build, kubeconfig, paths, pki, processes

PROFILING_ENV = "LSS_DEV_APISERVER_PROFILING"
AUDIT_ENV = "LSS_DEV_APISERVER_AUDIT"
AUDIT_LOG = "audit.log"
"""Under the state dir; written only when AUDIT_ENV is set to 1 (see ``_audit_args``)."""
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
_KWOK_POD_STAGES = ("pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml")
_IMAGE_KEY = ".spec.containers.[0].image"
FATE_IMAGES = {
    "image-pull-backoff": "fate.kwok.invalid/image-pull-backoff:1",
    "crash-loop": "fate.kwok.invalid/crash-loop:1",
    "never-ready": "fate.kwok.invalid/never-ready:1",
    "fail": "fate.kwok.invalid/fail:1",
}
"""Images whose pods kwok gives a fate instead of Ready (manifests/kwok-fates.yaml)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortTaken(RuntimeError):
    """A component could not bind its port: another process took it after it was chosen
    (ports are picked free, then bound later by the component; the gap is a race)."""

    def __init__(self, component: str, log: str) -> None:
        super().__init__(f"{component} could not bind its port; its log ends with:\n{log}")
        self.component = component


def port_taken(log: str, *, ports: tuple[int, ...]) -> bool:
    """Whether ``log`` says one of ``ports`` was in use (the log keeps earlier attempts' lines,
    which name the ports given up)."""
    return any(
        "address already in use" in line and any(f":{port}" in line for port in ports)
        for line in log.splitlines()
    )


@dataclass
class ControlPlane:
    """One control plane whose files live under ``state_dir``."""

    state_dir: Path
    binaries: dict[str, Path]
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    kwok_port: int

    @property
    def pki(self) -> pki.Pki:
        return pki.Pki(self.state_dir / "pki")

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    # -- process command lines ------------------------------------------------------------

    def _argv(self, name: str) -> list[str]:
        p = self.pki
        if name == "etcd":
            peer = f"http://127.0.0.1:{self.etcd_peer_port}"
            client = f"http://127.0.0.1:{self.etcd_port}"
            return [
                str(self.binaries["etcd"]),
                "--name=lss",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=lss={peer}",
                "--listen-metrics-urls=",
                # A development store: fsync would make every write wait on the disk.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ]
        if name == "kube-apiserver":
            return [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.ca_cert}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=false",
                f"--kubelet-client-certificate={p.admin_cert}",
                f"--kubelet-client-key={p.admin_key}",
                f"--kubelet-certificate-authority={p.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
                # /debug/pprof (admin only) only when PROFILING_ENV is set to 1, to profile
                # the API server under a bench.
                f"--profiling={'true' if os.environ.get(PROFILING_ENV) == '1' else 'false'}",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                "--event-ttl=1h",
                *self._audit_args(),
            ]
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false"]
        if name == "kube-controller-manager":
            return [
                str(self.binaries["kube-controller-manager"]),
                *common,
                "--secure-port=0",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={p.ca_cert}",
                f"--cluster-signing-key-file={p.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # The defaults (20 qps) make the garbage collector the bottleneck of cleanup.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-gc-syncs=50",
            ]
        if name == "kube-scheduler":
            return [
                str(self.binaries["kube-scheduler"]),
                f"--config={self._scheduler_config()}",
                "--secure-port=0",
            ]
        if name == "kwok":
            return [
                str(self.binaries["kwok"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self._kwok_config()}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                f"--node-port={self.kwok_port}",
                f"--server-address=127.0.0.1:{self.kwok_port}",
                f"--tls-cert-file={p.kubelet_cert}",
                f"--tls-private-key-file={p.kubelet_key}",
                "--node-lease-duration-seconds=40",
            ]
        raise ValueError(f"unknown component {name}")

    def _audit_args(self) -> list[str]:
        """With AUDIT_ENV=1, every request but a watch's start is logged at Metadata level
        (who, verb, object, code) to AUDIT_LOG: to attribute a bench's API requests to the
        client that made them (bench/audit_summary.py). Off by default: it costs the API
        server a log line per request."""
        if os.environ.get(AUDIT_ENV) != "1":
            return []
        policy = self.state_dir / "audit-policy.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [{"level": "Metadata"}],
                }
            )
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.state_dir / AUDIT_LOG}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-maxbackup=1",
            "--audit-log-maxsize=2000",
        ]

    def _scheduler_config(self) -> Path:
        path = self.state_dir / "kube-scheduler.yaml"
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig), "qps": 500, "burst": 1000},
            "leaderElection": {"leaderElect": False},
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def _kwok_config(self) -> Path:
        """kwok's stages: the ones kwokctl uses, read from the pinned kwok module source."""
        source = _kwok_source()
        docs: list[str] = [
            (source / "kustomize/stage/node/fast/node-initialize.yaml").read_text(),
            (
                source / "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
            ).read_text(),
        ]
        fates_text = (Path(__file__).parent / "manifests" / "kwok-fates.yaml").read_text()
        fate_images = sorted(
            expr["values"][0]
            for stage in yaml.safe_load_all(fates_text)
            for expr in stage["spec"]["selector"]["matchExpressions"]
            if expr["key"] == _IMAGE_KEY
        )
        for name in _KWOK_POD_STAGES:
            stage = yaml.safe_load((source / "kustomize/stage/pod/fast" / name).read_text())
            if stage["metadata"]["name"] == "pod-ready":
                # Pods with a fate image get their fate instead of becoming Ready.
                stage["spec"]["selector"]["matchExpressions"].append(
                    {"key": _IMAGE_KEY, "operator": "NotIn", "values": fate_images}
                )
            docs.append(yaml.safe_dump(stage, sort_keys=False))
        docs.append(fates_text)
        docs.append(
            yaml.safe_dump(
                {
                    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                    "kind": "KwokConfiguration",
                    "options": {
                        # A file config replaces kwok's defaults, so every worker count is
                        # set; pods get more workers because sandboxes churn, nodes do not.
                        "podPlayStageParallelism": 16,
                        "nodePlayStageParallelism": 4,
                        "nodeLeaseParallelism": 4,
                        "podsOnNodeSyncParallelism": 4,
                        # Serves exec/logs for kwok pods (the apiserver proxies to it).
                        "enableDebuggingHandlers": True,
                    },
                }
            )
        )
        # `kubectl exec` into any kwok pod runs the command on this host, in exec/ under
        # the state dir: there is no container. Enough for tests of exec-based checks.
        workdir = self.state_dir / "exec"
        workdir.mkdir(parents=True, exist_ok=True)
        docs.append(
            yaml.safe_dump(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "ClusterExec",
                    "metadata": {"name": "local-exec"},
                    "spec": {"execs": [{"local": {"workDir": str(workdir)}}]},
                }
            )
        )
        path = self.state_dir / "kwok.yaml"
        path.write_text("\n---\n".join(d.strip() for d in docs) + "\n")
        return path

    # -- lifecycle --------------------------------------------------------------------------

    def running(self) -> dict[str, int | None]:
        return {n: processes.pid_of(n, state_dir=self.state_dir) for n in ORDER}

    def start(self, *, nodes: int) -> None:
        """Start whatever is not running, then bootstrap. Idempotent."""
        pki.ensure(self.state_dir / "pki")
        p = self.pki
        kubeconfig.write(
            self.kubeconfig,
            server=self.server,
            ca=p.ca_cert,
            client_cert=p.admin_cert,
            client_key=p.admin_key,
            name="llmsafespace-dev",
        )
        self.start_component("etcd")
        self._wait(
            "etcd", lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), timeout=30
        )
        self.start_component("kube-apiserver")
        self.wait_apiserver()
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self.start_component(name)
        # kwok logs a lost port and may keep running without its server (its nodes then
        # never become Ready): wait until the server answers with our certificate.
        self._wait("kwok", self._kwok_serving, timeout=30)
        self.bootstrap(nodes=nodes)

    def start_component(self, name: str) -> None:
        if processes.pid_of(name, state_dir=self.state_dir) is None:
            processes.start(name, self._argv(name), state_dir=self.state_dir)

    def paused(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The component stopped (SIGSTOP) until the block ends: e.g. the controller
        manager, to show what our services do without its garbage collector."""
        return processes.paused(name, state_dir=self.state_dir)

    def stop(self) -> None:
        for name in reversed(ORDER):
            processes.stop(name, state_dir=self.state_dir)

    def wait_apiserver(self, *, timeout: float = 90) -> None:
        self._wait("kube-apiserver", lambda: self._get("/readyz") is not None, timeout=timeout)

    def _wait(self, name: str, check: object, *, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if processes.pid_of(name, state_dir=self.state_dir) is None:
                log = processes.tail(name, state_dir=self.state_dir)
                if port_taken(log, ports=self._ports_of(name)):
                    raise PortTaken(name, log)
                raise RuntimeError(
                    f"{name} exited during start-up; its log ends with:\n"
                    + processes.tail(name, state_dir=self.state_dir)
                )
            time.sleep(0.1)
        raise RuntimeError(
            f"{name} not ready after {timeout:.0f}s; its log ends with:\n"
            + processes.tail(name, state_dir=self.state_dir)
        )

    def _kwok_serving(self) -> bool:
        log = processes.tail("kwok", state_dir=self.state_dir)
        if port_taken(log, ports=(self.kwok_port,)):
            processes.stop("kwok", state_dir=self.state_dir)
            raise PortTaken("kwok", log)
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.kwok_port}/healthz", context=self._ssl(), timeout=2
            ):
                return True
        except urllib.error.HTTPError:
            return True  # it answered, with our CA's certificate: it is serving
        except (urllib.error.URLError, OSError):
            return False

    def _ports_of(self, name: str) -> tuple[int, ...]:
        return {
            "etcd": (self.etcd_port, self.etcd_peer_port),
            "kube-apiserver": (self.apiserver_port,),
            "kwok": (self.kwok_port,),
        }.get(name, ())

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=5) as resp:
                body: bytes = resp.read()
                return body
        except (urllib.error.URLError, OSError):
            return None

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def bootstrap(self, *, nodes: int) -> None:
        """Install CRDs, RuntimeClasses and kwok nodes; wait until the cluster can run pods."""
        manifests = Path(__file__).parent / "manifests"
        crds = sorted(str(p) for p in paths.crds_dir().glob("*.yaml"))
        if not crds:
            raise RuntimeError(f"no CRD manifests in {paths.crds_dir()}")
        apply = ["apply", "--server-side", "--force-conflicts"]
        self.kubectl(*apply, *(f"--filename={c}" for c in crds))
        self.kubectl(*apply, "-f", str(manifests / "runtimeclasses.yaml"))
        nodes_yaml = _nodes_yaml(nodes)
        self.kubectl(*apply, "-f", "-", stdin=nodes_yaml)
        # Status is ignored on updates of existing nodes: apply it through the subresource
        # too, so a state dir made by an older version gets today's capacity.
        self.kubectl(*apply, "--subresource=status", "-f", "-", stdin=nodes_yaml)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"--filename={c}" for c in crds),
        )
        # Established is not served: until a resource's watch cache has filled, its watches
        # and cache reads answer 429 "storage is (re)initializing". Wait for each of ours.
        for path in _crd_cache_paths(crds):
            self._wait("kube-apiserver", lambda p=path: self._get(p) is not None, timeout=60)
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        # The service-account controller is what lets pods be admitted in a new namespace.
        self._wait(
            "kube-controller-manager",
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            timeout=60,
        )

    def ready_nodes(self) -> int:
        body = self._get("/api/v1/nodes")
        if body is None:
            return 0
        count = 0
        for node in json.loads(body).get("items", []):
            for cond in node.get("status", {}).get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    count += 1
        return count


def _crd_cache_paths(crd_files: list[str]) -> list[str]:
    """For each CRD manifest, a list of its resource that only the watch cache serves."""
    paths = []
    for name in crd_files:
        spec = yaml.safe_load(Path(name).read_text())["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("served", True))
        paths.append(
            f"/apis/{spec['group']}/{version}/{spec['names']['plural']}?resourceVersion=0&limit=1"
        )
    return paths


def _nodes_yaml(count: int) -> str:
    docs = []
    for i in range(count):
        name = f"kwok-node-{i}"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        NODE_ANNOTATION: "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "node-role.kubernetes.io/agent": "",
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {
                        "cpu": "64",
                        "memory": "256Gi",
                        "ephemeral-storage": "1Ti",
                        "pods": "1000",
                    },
                    "capacity": {
                        "cpu": "64",
                        "memory": "256Gi",
                        "ephemeral-storage": "1Ti",
                        "pods": "1000",
                    },
                },
            }
        )
    return yaml.safe_dump_all(docs)


def _kwok_source() -> Path:
    """The pinned kwok module's source directory (downloaded into the Go module cache)."""
    module = build.KWOK
    version = module.version_of("sigs.k8s.io/kwok")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        cwd=module.directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(json.loads(out)["Dir"])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
