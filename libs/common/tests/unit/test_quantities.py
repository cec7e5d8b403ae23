"""Quantities: a table of CPU and memory forms (suffixes, exponents, decimals, YAML numbers),
rounding up, comparison, canonical formatting, and errors that name the field. Hypothesis:
format → parse round-trips; suffix scaling is exact; arbitrary text either parses or raises
InvalidObjectError (never anything else)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lss_common import errors
from lss_common.logic import quantities

CPU = "spec.resources.cpu"
MEMORY = "spec.resources.memory"


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        ("500m", 500),
        ("2", 2000),
        ("0.5", 500),
        (".5", 500),
        ("1.", 1000),
        ("+1", 1000),
        ("1500m", 1500),
        ("0.0001", 1),  # rounds up, as the API server's MilliValue()
        ("100n", 1),
        ("250000u", 250),
        ("1e3", 1_000_000),
        ("1E-3", 1),
        ("2k", 2_000_000),
        ("0", 0),
        (2, 2000),
        (0.25, 250),
    ],
)
def test_cpu_millicores(text: quantities.Quantity, millicores: int) -> None:
    assert quantities.cpu_millicores(text, field=CPU) == millicores


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1Gi", 2**30),
        ("1Ti", 2**40),
        ("1T", 10**12),
        ("1e3", 1000),
        ("1E3", 1000),
        ("128974848", 128974848),
        ("129M", 129_000_000),
        ("1.5Gi", 3 * 2**29),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1Ei", 2**60),
        ("1500m", 2),  # 1.5 bytes, rounded up
        (1024, 1024),
        (1e3, 1000),
    ],
)
def test_memory_bytes(text: quantities.Quantity, amount: int) -> None:
    assert quantities.memory_bytes(text, field=MEMORY) == amount


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1Gb", "1 Gi", " 1", "1e", "1.2.3", "--1", "1ki", "Mi", "1e99", "\u0661", "1" * 70],
)
def test_invalid_quantities_name_the_field(text: str) -> None:
    with pytest.raises(errors.InvalidObjectError) as raised:
        quantities.memory_bytes(text, field=MEMORY)
    assert raised.value.field == MEMORY
    assert MEMORY in str(raised.value)


@pytest.mark.parametrize("value", [True, None, float("nan"), float("inf"), [1]])
def test_non_quantity_values_are_refused(value: object) -> None:
    with pytest.raises(errors.InvalidObjectError) as raised:
        # Non-quantities on purpose: the test checks the run-time refusal.
        quantities.cpu_millicores(value, field=CPU)  # type: ignore[arg-type]
    assert raised.value.field == CPU


def test_negative_and_huge_are_refused() -> None:
    with pytest.raises(errors.InvalidObjectError, match="negative"):
        quantities.cpu_millicores("-1", field=CPU)
    with pytest.raises(errors.InvalidObjectError, match="too large"):
        quantities.memory_bytes("16Ei", field=MEMORY)


def test_compare() -> None:
    assert quantities.compare_cpu("500m", "0.5", field=CPU) == 0
    assert quantities.compare_cpu("1", "999m", field=CPU) == 1
    assert quantities.compare_memory("1Gi", "1G", field=MEMORY) == 1
    assert quantities.compare_memory("1000M", "1G", field=MEMORY) == 0
    assert quantities.compare_memory("1Mi", "2Mi", field=MEMORY) == -1


def test_format() -> None:
    assert quantities.format_cpu(2000) == "2"
    assert quantities.format_cpu(1500) == "1500m"
    assert quantities.format_cpu(0) == "0"
    assert quantities.format_memory(512 * 2**20) == "512Mi"
    assert quantities.format_memory(3 * 2**29) == "1536Mi"
    assert quantities.format_memory(1000) == "1000"
    assert quantities.format_memory(0) == "0"
    with pytest.raises(ValueError, match="negative"):
        quantities.format_cpu(-1)
    with pytest.raises(ValueError, match="negative"):
        quantities.format_memory(-1)


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_format_round_trips(amount: int) -> None:
    assert quantities.memory_bytes(quantities.format_memory(amount), field=MEMORY) == amount


@given(st.integers(min_value=0, max_value=10**12))
def test_cpu_format_round_trips(millicores: int) -> None:
    assert quantities.cpu_millicores(quantities.format_cpu(millicores), field=CPU) == millicores


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"]),
)
def test_suffix_scaling_is_exact(number: int, suffix: str) -> None:
    scale = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}.get(suffix) or {
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }[suffix]
    assert quantities.memory_bytes(f"{number}{suffix}", field=MEMORY) == number * scale


@given(st.integers(min_value=0, max_value=10**9))
def test_millicores_and_decimal_cores_agree(millicores: int) -> None:
    decimal_text = f"{millicores // 1000}.{millicores % 1000:03d}"
    assert quantities.cpu_millicores(decimal_text, field=CPU) == millicores
    assert quantities.cpu_millicores(f"{millicores}m", field=CPU) == millicores


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_invalid_object(text: str) -> None:
    try:
        amount = quantities.memory_bytes(text, field=MEMORY)
    except errors.InvalidObjectError as error:
        named = error.field
    else:
        named = MEMORY
        assert amount >= 0
    assert named == MEMORY
