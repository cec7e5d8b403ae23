"""``llmsafespace``: the developer CLI. ``llmsafespace dev up | down | status | samples``.

``up`` starts NATS JetStream and the local control plane (building it first when its
binaries are not cached), installs the CRDs and prints the environment lines to use.
``up --services`` also starts every service package that exists in the workspace;
``up --samples`` applies deploy/samples and shows ``kubectl get llmsafespace``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from lss_dev import build, paths, platform, services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmsafespace")
    groups = parser.add_subparsers(dest="group", required=True)
    dev = groups.add_parser("dev", help="the local platform (Kubernetes + kwok, NATS)")
    dev.add_argument(
        "--state-dir",
        type=Path,
        default=paths.default_state_dir(),
        help="where PKI, etcd data, logs and pids live (default: %(default)s)",
    )
    commands = dev.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything that is not running (idempotent)")
    up.add_argument("--nodes", type=int, default=3, help="kwok nodes (default: %(default)s)")
    up.add_argument("--services", action="store_true", help="also start the services")
    up.add_argument("--samples", action="store_true", help="apply deploy/samples and show them")
    commands.add_parser("down", help="stop everything (state is kept)")
    commands.add_parser("status", help="show what runs, as JSON")
    commands.add_parser("env", help="print the KUBECONFIG=... NATS_URL=... lines")
    commands.add_parser("samples", help="apply deploy/samples and show them")
    commands.add_parser(
        "build", help="build the control plane binaries and the tests' tools if not cached"
    )
    kubectl = commands.add_parser("kubectl", help="run the platform's kubectl")
    kubectl.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    plat = platform.Platform(args.state_dir, nodes=getattr(args, "nodes", 3))
    try:
        return _run(args, plat)
    except RuntimeError as exc:
        print(f"llmsafespace: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, plat: platform.Platform) -> int:
    if args.command == "up":
        started = time.monotonic()
        plat.up()
        print(
            f"platform up in {time.monotonic() - started:.1f}s "
            f"({plat.control_plane.ready_nodes()} kwok nodes ready, JetStream ready)",
            file=sys.stderr,
        )
        if args.services:
            names = services.start_all(plat)
            print(f"services running: {', '.join(names) or 'none yet'}", file=sys.stderr)
        if args.samples:
            _samples(plat)
        print(plat.env_lines())
        return 0
    if args.command == "down":
        services.stop_all(plat)
        plat.down()
        print("platform stopped", file=sys.stderr)
        return 0
    if args.command == "status":
        state = plat.status()
        state["services"] = services.running(plat)
        print(json.dumps(state, indent=2))
        return 0 if plat.is_up() else 3
    if args.command == "env":
        print(plat.env_lines())
        return 0
    if args.command == "samples":
        _samples(plat)
        return 0
    if args.command == "build":
        # The platform's binaries and the tools the tests use (helm, promrules).
        for name, path in build.ensure_binaries(build.MODULES).items():
            print(f"{name}: {path}")
        return 0
    if args.command == "kubectl":
        kubectl_args = args.args[1:] if args.args[:1] == ["--"] else args.args
        return subprocess.call(
            [str(plat.binaries["kubectl"]), f"--kubeconfig={plat.kubeconfig}", *kubectl_args]
        )
    raise AssertionError(args.command)


def _samples(plat: platform.Platform) -> None:
    cp = plat.control_plane
    files = sorted(str(p) for p in paths.samples_dir().glob("*.yaml"))
    for path in files:
        print(cp.kubectl("apply", "--server-side", "-f", path), end="", file=sys.stderr)
    print(cp.kubectl("get", "llmsafespace", "--all-namespaces", "-o", "wide"), end="")


if __name__ == "__main__":
    sys.exit(main())
