"""A tiny in-memory PKI for signature tests that do not need revocation responders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.signing.fixtures import _certificate, _name

NOW = dt.datetime.now(dt.UTC)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SoftKey:
    """Satisfies signing.envelope.EnvelopeKey with a software key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKey

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def new_key(kind: str = "rsa", bits: int = 2048) -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def issue(
    subject: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    *,
    ca: bool = False,
    organ_code: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    """A certificate for ``key``: self-signed when ``issuer`` is None."""
    name = _name(subject, organ_code)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    return _certificate(
        name,
        key.public_key(),
        issuer_name,
        signing_key,
        ca=ca,
        not_before=not_before,
        not_after=not_after or NOW + dt.timedelta(days=365),
    )


@dataclass
class MiniPki:
    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey

    def short_lived_crl(self, seconds: float = 30) -> x509.CertificateRevocationList:
        """An empty CRL of the issuing CA whose next update is ``seconds`` from now."""
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing.subject)
            .last_update(NOW - dt.timedelta(minutes=1))
            .next_update(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
            .sign(self.issuing_key, hashes.SHA256())
        )

    @classmethod
    def create(cls, name: str = "Test Root CA") -> MiniPki:
        root_key = new_key()
        long_ago = NOW - dt.timedelta(days=3650)
        root = issue(name, root_key, None, ca=True, not_before=long_ago)
        issuing_key = new_key()
        issuing = issue(f"{name} Issuing", issuing_key, (root, root_key), ca=True, not_before=long_ago)
        return cls(root, root_key, issuing, issuing_key)

    def organisation(
        self, organ_code: str | None, name: str = "Sở Tài chính", kind: str = "rsa", **kw: object
    ) -> SoftKey:
        key = new_key(kind)
        cert = issue(name, key, (self.issuing, self.issuing_key), organ_code=organ_code, **kw)  # type: ignore[arg-type]
        return SoftKey(cert, (self.issuing,), key)
