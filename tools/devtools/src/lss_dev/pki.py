"""Certificates and keys for the local control plane, generated once per state directory.

A private CA signs the apiserver's serving certificate and an admin client certificate in
``system:masters``; a separate key pair signs service-account tokens. EC P-256 keys keep
generation instant. This is development PKI: it never leaves the state directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=3650)
SERVICE_CLUSTER_IP = "10.96.0.1"


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def kubelet_cert(self) -> Path:
        return self.directory / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.directory / "kubelet.key"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _leaf(
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    common_name: str,
    organization: str | None,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    builder = (
        _builder(x509.Name(attrs), ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _ca(
    common_name: str,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, name, cert


@dataclass(frozen=True)
class ServingPair:
    """A serving certificate for 127.0.0.1 and its key, and the CA that signed it."""

    cert: Path
    key: Path
    ca_pem: bytes
    """For a ``caBundle`` (base64 of it) or a client's trust store."""


def loopback_serving(directory: Path, *, common_name: str) -> ServingPair:
    """A one-off CA and a 127.0.0.1 serving certificate it signs, written to ``directory``
    (for a server the API server calls, such as a test's admission webhook)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca = _ca(f"{common_name}-ca")
    key, cert = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        common_name=common_name,
        organization=None,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    pair = ServingPair(
        cert=directory / f"{common_name}.crt",
        key=directory / f"{common_name}.key",
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
    )
    _write_key(pair.key, key)
    _write_cert(pair.cert, cert)
    return pair


def ensure(directory: Path) -> Pki:
    """Create the PKI in ``directory`` unless it is already complete."""
    pki = Pki(directory)
    wanted = [pki.ca_cert, pki.serving_cert, pki.admin_cert, pki.sa_key, pki.kubelet_cert]
    if all(p.exists() for p in wanted):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca = _ca("llmsafespace-dev-ca")
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca)

    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    ips = ["127.0.0.1", SERVICE_CLUSTER_IP]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    key, cert = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        common_name="kube-apiserver",
        organization=None,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    _write_key(pki.serving_key, key)
    _write_cert(pki.serving_cert, cert)

    # kwok serves the kubelet API (exec, logs) for its simulated nodes.
    key, cert = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        common_name="kwok-kubelet",
        organization=None,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    _write_key(pki.kubelet_key, key)
    _write_cert(pki.kubelet_cert, cert)

    key, cert = _leaf(
        ca_key=ca_key,
        ca_name=ca_name,
        common_name="llmsafespace-dev-admin",
        organization="system:masters",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[],
    )
    _write_key(pki.admin_key, key)
    _write_cert(pki.admin_cert, cert)

    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
