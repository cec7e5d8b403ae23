"""Bytes ⇄ message Structs for the bus: msgspec JSON, one cached decoder per message type.

Every decode failure (malformed JSON, a wrong type, a missing field, an unknown ``v``) becomes
``errors.InvalidMessage``, which the consume loop terms and counts. This module only
translates; it does not know subjects, headers or streams.
"""

from __future__ import annotations

import typing

import msgspec

from lss_common import errors

T = typing.TypeVar("T", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """The JSON wire form of ``message``."""
    return _encoder.encode(message)


def decode(data: bytes, *, message_type: type[T]) -> T:
    """Decode ``data`` as ``message_type``; ``errors.InvalidMessage`` if it is not one."""
    try:
        return _decoder(message_type).decode(data)
    except msgspec.DecodeError as exc:
        # ValidationError is a DecodeError subclass: both mean "this payload is not a T".
        raise errors.InvalidMessage(f"cannot decode {message_type.__name__}: {exc}") from exc


# One decoder per message type: building a decoder costs far more than using it.
_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[typing.Any]] = {}


def _decoder(message_type: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(message_type)
    if decoder is None:
        decoder = _decoders[message_type] = msgspec.json.Decoder(message_type)
    return decoder
