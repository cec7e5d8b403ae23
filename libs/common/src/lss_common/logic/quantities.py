"""Kubernetes resource quantities: parse CPU to millicores and memory to bytes, compare, format.

The grammar is the API server's (``k8s.io/apimachinery/pkg/api/resource``): a signed decimal
number followed by a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m "" k M G T P E)
or a decimal exponent (e3, E-2). Arithmetic is exact (fractions), and results round up as the
server's ``MilliValue()``/``Value()`` do, so "0.0001" CPU is 1m. YAML numbers (``cpu: 2``,
``memory: 1e3``) are accepted as well.

Errors raise ``errors.InvalidObjectError`` naming the field, so a bad spec value reaches the
user's condition message as "spec.resources.cpu: ...".

Pure: no I/O.
"""

from __future__ import annotations

import decimal
import fractions
import math
import re

from lss_common import errors

Quantity = str | int | float

_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|n|u|m|k|M|G|T|P|E|)\Z"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXPONENTS = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
# Past these the value cannot be a real request or limit; bounding them also keeps the exact
# arithmetic cheap for hostile input such as "1e999999".
_MAX_TEXT_LENGTH = 64
_MAX_ABS_EXPONENT = 30
_MAX_VALUE = 2**63 - 1  # the server's int64 ceiling


def parse_quantity(value: Quantity, *, field: str) -> fractions.Fraction:
    """The exact value of a quantity; ``field`` names it in errors."""
    if isinstance(value, bool):
        raise errors.InvalidObjectError(f"{field}: expected a quantity, got a boolean", field=field)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise errors.InvalidObjectError(f"{field}: {value} is not a quantity", field=field)
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise errors.InvalidObjectError(
            f"{field}: expected a quantity string, got {type(value).__name__}", field=field
        )
    if len(text) > _MAX_TEXT_LENGTH:
        raise errors.InvalidObjectError(f"{field}: quantity is too long", field=field)
    match = _PATTERN.match(text)
    if match is None:
        raise errors.InvalidObjectError(
            f"{field}: {text!r} is not a Kubernetes quantity (examples: 500m, 2, 512Mi, 1G)",
            field=field,
        )
    number = fractions.Fraction(decimal.Decimal(match["number"]))
    suffix = match["suffix"]
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    exponent = _DECIMAL_EXPONENTS[suffix] if suffix in _DECIMAL_EXPONENTS else int(suffix[1:])
    if abs(exponent) > _MAX_ABS_EXPONENT:
        raise errors.InvalidObjectError(
            f"{field}: exponent of {text!r} is out of range", field=field
        )
    return number * fractions.Fraction(10) ** exponent


def _whole_units(value: fractions.Fraction, *, field: str, text: Quantity) -> int:
    if value < 0:
        raise errors.InvalidObjectError(f"{field}: {text!r} must not be negative", field=field)
    units = math.ceil(value)
    if units > _MAX_VALUE:
        raise errors.InvalidObjectError(f"{field}: {text!r} is too large", field=field)
    return units


def cpu_millicores(value: Quantity, *, field: str) -> int:
    """CPU in millicores, rounded up: "500m" → 500, "2" → 2000, "0.5" → 500."""
    return _whole_units(parse_quantity(value, field=field) * 1000, field=field, text=value)


def memory_bytes(value: Quantity, *, field: str) -> int:
    """Memory in bytes, rounded up: "512Mi" → 536870912, "1G" → 10**9, "1e3" → 1000."""
    return _whole_units(parse_quantity(value, field=field), field=field, text=value)


def _sign(difference: int) -> int:
    return (difference > 0) - (difference < 0)


def compare_cpu(left: Quantity, right: Quantity, *, field: str) -> int:
    """-1, 0 or 1 as ``left`` is less than, equal to or more CPU than ``right``."""
    return _sign(cpu_millicores(left, field=field) - cpu_millicores(right, field=field))


def compare_memory(left: Quantity, right: Quantity, *, field: str) -> int:
    """-1, 0 or 1 as ``left`` is less than, equal to or more memory than ``right``."""
    return _sign(memory_bytes(left, field=field) - memory_bytes(right, field=field))


def format_cpu(millicores: int) -> str:
    """The canonical text for a CPU amount: whole cores as "2", otherwise "1500m"."""
    if millicores < 0:
        raise ValueError("CPU must not be negative")
    cores, rest = divmod(millicores, 1000)
    return str(cores) if rest == 0 else f"{millicores}m"


def format_memory(amount_bytes: int) -> str:
    """The canonical text for a memory amount: the largest exact binary suffix, or bytes."""
    if amount_bytes < 0:
        raise ValueError("memory must not be negative")
    if amount_bytes == 0:
        return "0"
    for suffix, scale in reversed(_BINARY.items()):
        if amount_bytes % scale == 0:
            return f"{amount_bytes // scale}{suffix}"
    return str(amount_bytes)
