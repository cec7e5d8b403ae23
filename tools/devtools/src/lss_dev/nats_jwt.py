"""Decentralised NATS authentication for tests: an operator, an account and its users, as
``nsc`` would make them (NKeys and signed JWTs), and the ``.creds`` file a user connects with.

Enough of the NATS JWT v2 format for nats-server's memory resolver: self-signed operator,
account signed by the operator (JetStream enabled without limits), user signed by the
account. Development material only: the keys live in the test's directory.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import nkeys

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_UNLIMITED_JETSTREAM = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


@dataclasses.dataclass(frozen=True)
class Identity:
    """One NKey pair: ``seed`` (secret) and ``public_key``."""

    seed: bytes

    @property
    def public_key(self) -> str:
        key: bytes = nkeys.from_seed(self.seed).public_key
        return key.decode()

    def sign(self, data: bytes) -> bytes:
        signature: bytes = nkeys.from_seed(self.seed).sign(data)
        return signature


def new_identity(prefix: int) -> Identity:
    """A fresh key pair of the kind ``prefix`` (``nkeys.PREFIX_BYTE_OPERATOR`` ...)."""
    return Identity(seed=bytes(nkeys.encode_seed(os.urandom(32), prefix)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(*, issuer: Identity, subject: str, name: str, nats: dict[str, Any]) -> str:
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()),
        "iss": issuer.public_key,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.new("sha512_256", json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


@dataclasses.dataclass(frozen=True)
class Operator:
    """An operator with one account; :meth:`server_config` trusts it, :meth:`creds` makes a
    user of the account."""

    operator: Identity
    account: Identity
    system: Identity
    """The system account (nats-server's JetStream needs one)."""

    @property
    def operator_jwt(self) -> str:
        return _jwt(
            issuer=self.operator,
            subject=self.operator.public_key,
            name="lss-test-operator",
            nats={"type": "operator"},
        )

    @property
    def account_jwt(self) -> str:
        return _jwt(
            issuer=self.operator,
            subject=self.account.public_key,
            name="lss",
            nats={"type": "account", "limits": _UNLIMITED_JETSTREAM},
        )

    @property
    def system_jwt(self) -> str:
        return _jwt(
            issuer=self.operator,
            subject=self.system.public_key,
            name="SYS",
            nats={"type": "account"},
        )

    def server_config(self) -> str:
        """nats-server configuration: trust this operator, its account preloaded."""
        return (
            f'operator: "{self.operator_jwt}"\n'
            f"system_account: {self.system.public_key}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {self.account.public_key}: "{self.account_jwt}"\n'
            f'  {self.system.public_key}: "{self.system_jwt}"\n'
            "}\n"
        )

    def creds(self, path: Path, *, name: str = "lss") -> Path:
        """Write the ``.creds`` file of a new user of the account (mode 0600)."""
        user = new_identity(nkeys.PREFIX_BYTE_USER)
        token = _jwt(
            issuer=self.account,
            subject=user.public_key,
            name=name,
            nats={"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
        )
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{token}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path


def new_operator() -> Operator:
    return Operator(
        operator=new_identity(nkeys.PREFIX_BYTE_OPERATOR),
        account=new_identity(nkeys.PREFIX_BYTE_ACCOUNT),
        system=new_identity(nkeys.PREFIX_BYTE_ACCOUNT),
    )
