"""bench/plot.py draws a valid PNG from a results dict (the figure's content is judged by eye)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import bench_scripts
import pytest
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


plot = bench_scripts.load("plot")


def _summary(p50: float) -> dict[str, float]:
    return {"count": 10, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "max_ms": p50 * 4}


def _results() -> dict[str, Any]:
    return {
        "when": "2026-01-01T00:00:00+00:00",
        "machine": {"cpus": 2},
        "floor_bare_apiserver_create_round_trip": {
            "concurrency_1": _summary(5),
            "concurrency_10": _summary(8),
            "concurrency_50": _summary(20),
            "beside_cold": _summary(5),
        },
        "warm_claim_sandbox_to_running_on_lss_status": {
            "concurrency_1": _summary(120),
            "concurrency_10": _summary(700),
            "concurrency_50": {"count": 0, "fell_back_to_cold": 0},
        },
        "cold_create_sandbox_to_running_on_lss_status": _summary(300),
        "sustained": {
            "created": 150,
            "concurrency": 50,
            "warm_claims_per_second": 12.5,
            "refill_warm_pods_per_second": 9.0,
            "floor_bare_creates_per_second": 400.0,
        },
        "refill": {
            "missing": 60,
            "warm_pods_per_second": 30.0,
            "floor_bare_creates_per_second": 380.0,
        },
    }


def _assert_png(path: pathlib.Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (
            round(plot.SIZE_INCHES[0] * plot.DPI),
            round(plot.SIZE_INCHES[1] * plot.DPI),
        )


def test_write_png_draws_a_png_of_the_figure_size(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "warm_claim.png"
    plot.write_png(_results(), out)
    _assert_png(out)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda r: r.update(floor_bare_apiserver_create_round_trip=_summary(5)),
            id="one floor for the whole run (older results files)",
        ),
        pytest.param(lambda r: r.update(sustained={}, refill={}), id="no rates"),
    ],
)
def test_main_redraws_an_existing_results_file_beside_it(
    tmp_path: pathlib.Path, change: Callable[[dict[str, Any]], object]
) -> None:
    results = _results()
    change(results)
    source = tmp_path / "warm_claim.json"
    source.write_text(json.dumps(results))
    assert plot.main([str(source)]) == 0
    _assert_png(tmp_path / "warm_claim.png")
