"""JSON encoding and decoding of any model, with one cached msgspec decoder per type.

Decoding errors are msgspec's (``msgspec.DecodeError``, a ``ValueError``); translating them
into our error hierarchy is the caller's job at its boundary (``kube/``, ``bus/``), because
``models`` imports nothing outside itself.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import msgspec

_StructT = TypeVar("_StructT", bound=msgspec.Struct)

_ENCODER = msgspec.json.Encoder()


@functools.cache
def _decoder(model: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    # Building a Decoder compiles the type's schema; doing it once per type, not per call,
    # matters on the watch path where every event is decoded.
    return msgspec.json.Decoder(model)


def encode(obj: msgspec.Struct) -> bytes:
    """Encode ``obj`` to JSON bytes (unset fields omitted, camelCase names)."""
    return _ENCODER.encode(obj)


def decode(data: bytes | str, *, model: type[_StructT]) -> _StructT:
    """Decode JSON ``data`` into ``model``; unknown fields are ignored."""
    return cast(_StructT, _decoder(model).decode(data))


def from_dict(data: Mapping[str, Any], *, model: type[_StructT]) -> _StructT:
    """Convert an already-parsed object (as kubernetes_asyncio returns them) into ``model``."""
    return msgspec.convert(data, type=model)


def to_dict(obj: msgspec.Struct) -> dict[str, Any]:
    """The JSON-ready dict of ``obj``, e.g. as a body for CustomObjectsApi."""
    return cast(dict[str, Any], msgspec.to_builtins(obj))
