"""Attribute the API server's requests to the clients that made them, from its audit log.

The dev control plane writes an audit log when started with ``LSS_DEV_APISERVER_AUDIT=1``
(``<state-dir>/audit.log``, Metadata level). ``bench/warm_claim.py`` records the wall-clock
window of its sustained burst as ``sustained.api_requests_window_utc``; given that window and
the burst's size, this prints the requests per sandbox by client, verb and resource::

    uv run python bench/audit_summary.py /tmp/lss-bench/audit.log \\
        --results bench/results/warm_claim.json --per 150

A client is the authenticated user, shortened: our services' ServiceAccounts by name, the
controller manager's per-controller accounts as ``kcm:<controller>``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import pathlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_KCM_PREFIX = "system:serviceaccount:kube-system:"
_SA_PREFIX = "system:serviceaccount:"

Key = tuple[str, str, str]
"""(client, verb, resource[/subresource])"""


def client_of(username: str) -> str:
    if username.startswith(_KCM_PREFIX):
        return "kcm:" + username[len(_KCM_PREFIX) :]
    if username.startswith(_SA_PREFIX):
        return username[len(_SA_PREFIX) :].split(":", 1)[-1]
    return username


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        line = line.strip()
        if line:
            yield json.loads(line)


def count(
    found: Iterable[dict[str, Any]],
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    namespace: str | None = None,
) -> collections.Counter[Key]:
    """Completed requests (a watch counts once, when it starts streaming) in the window."""
    counts: collections.Counter[Key] = collections.Counter()
    for event in found:
        if event.get("stage") not in ("ResponseComplete", "ResponseStarted", "Panic"):
            continue
        if event.get("stage") == "ResponseStarted" and event.get("verb") != "watch":
            continue
        if event.get("stage") == "ResponseComplete" and event.get("verb") == "watch":
            continue
        received = _parse_time(event["requestReceivedTimestamp"])
        if (since is not None and received < since) or (until is not None and received > until):
            continue
        ref = event.get("objectRef") or {}
        if namespace is not None and ref.get("namespace") not in (namespace, None):
            continue
        resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        user = (event.get("user") or {}).get("username", "?")
        counts[(client_of(user), event.get("verb", "?"), resource)] += 1
    return counts


def summarise(counts: collections.Counter[Key], *, per: int) -> dict[str, Any]:
    """Per-``per`` totals by client, then every (client, verb, resource) above 0.005."""
    by_client: dict[str, dict[str, float]] = {}
    for (who, verb, _), value in counts.items():
        kind = "writes" if verb in _WRITES else "reads"
        row = by_client.setdefault(who, {"writes": 0.0, "reads": 0.0})
        row[kind] += value / per
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "per": per,
        "writes": round(sum(v for k, v in counts.items() if k[1] in _WRITES) / per, 2),
        "reads": round(sum(v for k, v in counts.items() if k[1] not in _WRITES) / per, 2),
        "by_client": {
            who: {kind: round(value, 2) for kind, value in row.items()}
            for who, row in sorted(by_client.items(), key=lambda item: -sum(item[1].values()))
        },
        "by_client_verb_resource": {
            f"{who} {verb} {resource}": round(value / per, 2)
            for (who, verb, resource), value in rows
            if value / per >= 0.005
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=pathlib.Path, help="the audit log (JSON lines)")
    parser.add_argument("--results", type=pathlib.Path, help="warm_claim results: its window")
    parser.add_argument("--since", help="ISO time; overrides --results")
    parser.add_argument("--until", help="ISO time; overrides --results")
    parser.add_argument("--namespace", help="only requests in this namespace (or cluster-wide)")
    parser.add_argument("--per", type=int, default=1, help="divide the counts by this")
    args = parser.parse_args()
    since = until = None
    if args.results is not None:
        window = json.loads(args.results.read_text())["sustained"]["api_requests_window_utc"]
        since, until = (_parse_time(t) for t in window)
    if args.since:
        since = _parse_time(args.since)
    if args.until:
        until = _parse_time(args.until)
    with args.log.open() as lines:
        counts = count(events(lines), since=since, until=until, namespace=args.namespace)
    print(json.dumps(summarise(counts, per=args.per), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
