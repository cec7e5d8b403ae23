"""The PNG figure of ``bench/warm_claim.py``'s results, from its JSON.

    uv run python bench/plot.py bench/results/warm_claim.json [--out FILE.png]

Left: Sandbox created → Running latency (p50/p95/p99) of warm claims at each concurrency and
of cold creates, each beside the bare apiserver create round trip measured at the same
concurrency in the same run, with the ratios the targets are about. Right: sustained warm
claims/s and the pool's refill rates beside the bare create throughput of the same run.

``warm_claim.py`` calls :func:`write_png` after a run; this script re-draws a results file
that already exists (the default output is the same path with ``.png``). Results written
before the floor was measured per concurrency (one floor summary for the whole run) are
drawn against that single floor.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

import matplotlib

# Agg: no display on a server or in CI, and no GUI toolkit import.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

WARM = "warm_claim_sandbox_to_running_on_lss_status"
COLD = "cold_create_sandbox_to_running_on_lss_status"
FLOOR = "floor_bare_apiserver_create_round_trip"
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
CLAIMS_TARGET_PER_SECOND = 100
SIZE_INCHES = (14.0, 5.5)
DPI = 110

_SHADES = {
    "warm": ("#9ecae1", "#4292c6", "#08519c"),
    "cold": ("#fdae6b", "#f16913", "#a63603"),
    "floor": ("#d9d9d9", "#969696", "#525252"),
}


def _floor(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    floor: dict[str, Any] = results.get(FLOOR) or {}
    if "p50_ms" in floor:  # one floor for the whole run (results before per-concurrency)
        return floor
    found: dict[str, Any] | None = floor.get(key)
    return found


def _groups(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(label, kind, measured summary, floor summary) for each group that has samples."""
    groups = []
    for key, summary in (results.get(WARM) or {}).items():
        floor = _floor(results, key)
        if summary.get("count") and floor and floor.get("count"):
            groups.append((f"warm x{key.rsplit('_', 1)[-1]}", "warm", summary, floor))
    cold = results.get(COLD) or {}
    floor = _floor(results, "beside_cold")
    if cold.get("count") and floor and floor.get("count"):
        groups.append(("cold x1", "cold", cold, floor))
    return groups


def _latency_panel(axis: Axes, results: dict[str, Any]) -> None:
    width = 0.13
    offsets = [(-2.5 + i) * width for i in range(6)]
    groups = _groups(results)
    for index, (_, kind, measured, floor) in enumerate(groups):
        bars = [(kind, measured, p) for p in PERCENTILES] + [
            ("floor", floor, p) for p in PERCENTILES
        ]
        for slot, (series, summary, percentile) in enumerate(bars):
            shade = _SHADES[series][PERCENTILES.index(percentile)]
            axis.bar(index + offsets[slot], summary[percentile], width, color=shade)
        top = max(measured["p99_ms"], floor["p99_ms"])
        ratio_p50 = measured["p50_ms"] / max(floor["p50_ms"], 1e-9)
        ratio_p99 = measured["p99_ms"] / max(floor["p99_ms"], 1e-9)
        axis.annotate(
            f"p50 {ratio_p50:.0f}x\np99 {ratio_p99:.0f}x",
            (index, top),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    axis.set_xticks(range(len(groups)), [label for label, *_ in groups])
    axis.set_yscale("log")
    axis.set_ylabel("ms (log)")
    axis.set_title(
        "Sandbox created → Running on LSS_STATUS\nbeside a bare create at that concurrency"
    )
    legend = [
        (_SHADES[series][i], f"{name} {p[:3]}")
        for series, name in (("warm", "warm"), ("cold", "cold"), ("floor", "floor"))
        for i, p in enumerate(PERCENTILES)
    ]
    axis.legend(
        [Patch(color=color) for color, _ in legend],
        [label for _, label in legend],
        fontsize=7,
        ncol=3,
        loc="upper left",
    )
    axis.margins(y=0.25)


def _rates(results: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(label, per second, colour) of each rate present in the results."""
    sustained: dict[str, Any] = results.get("sustained") or {}
    refill: dict[str, Any] = results.get("refill") or {}
    concurrency = sustained.get("concurrency", 50)
    wanted = [
        (
            f"warm claims/s, burst of {sustained.get('created', '?')}",
            sustained,
            "warm_claims_per_second",
            "#08519c",
        ),
        (
            "refill during the burst, WarmPods/s",
            sustained,
            "refill_warm_pods_per_second",
            "#41ab5d",
        ),
        (
            f"floor: bare creates/s, x{concurrency}",
            sustained,
            "floor_bare_creates_per_second",
            "#969696",
        ),
        (
            f"refill of {refill.get('missing', '?')} idle, WarmPods/s",
            refill,
            "warm_pods_per_second",
            "#006d2c",
        ),
        ("floor: bare creates/s before it", refill, "floor_bare_creates_per_second", "#969696"),
    ]
    return [
        (label, float(source[key]), colour)
        for label, source, key, colour in wanted
        if isinstance(source.get(key), int | float) and source[key] > 0
    ]


def _rates_panel(axis: Axes, results: dict[str, Any]) -> None:
    rates = _rates(results)
    positions = range(len(rates))
    axis.barh(positions, [v for _, v, _ in rates], color=[c for *_, c in rates])
    for position, (_, value, _) in zip(positions, rates, strict=True):
        axis.annotate(
            f"{value:g}",
            (value, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axis.set_yticks(positions, [label for label, *_ in rates], fontsize=8)
    axis.invert_yaxis()
    axis.axvline(CLAIMS_TARGET_PER_SECOND, color="#cb181d", linestyle="--", linewidth=1)
    axis.annotate(
        f"target {CLAIMS_TARGET_PER_SECOND} claims/s",
        (CLAIMS_TARGET_PER_SECOND, 0),
        xytext=(3, -14),
        textcoords="offset points",
        color="#cb181d",
        fontsize=8,
    )
    axis.set_xscale("log")
    axis.set_xlabel("per second (log)")
    axis.set_title("Sustained claims and pool refill\nbeside the bare create throughput")
    axis.margins(x=0.2)


def figure(results: dict[str, Any]) -> Figure:
    """The two panels of one run."""
    fig, (latency, rates) = plt.subplots(
        1, 2, figsize=SIZE_INCHES, gridspec_kw={"width_ratios": [3, 2]}
    )
    _latency_panel(latency, results)
    _rates_panel(rates, results)
    machine = results.get("machine") or {}
    fig.suptitle(
        f"bench/warm_claim.py  {results.get('when', '')}  ({machine.get('cpus', '?')} cores, "
        "everything on one machine)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def write_png(results: dict[str, Any], path: pathlib.Path) -> None:
    """Draw ``results`` into the PNG file ``path``."""
    fig = figure(results)
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        # pyplot keeps every figure alive until closed; a long run of plots would leak.
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=pathlib.Path, help="a warm_claim.py results JSON file")
    parser.add_argument("--out", type=pathlib.Path, help="default: the results path with .png")
    args = parser.parse_args(argv)
    out: pathlib.Path = args.out or args.results.with_suffix(".png")
    write_png(json.loads(args.results.read_text()), out)
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
