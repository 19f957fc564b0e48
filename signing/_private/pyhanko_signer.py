"""Any :class:`~signing.keys.SigningKey` as a pyHanko ``Signer``, for PAdES and other CMS signatures.

pyHanko hands ``async_sign_raw`` the DER-encoded signed attributes and a digest algorithm name and wants
the raw signature over their digest: exactly ``SigningKey.sign`` (SHA-256, then PKCS#1 v1.5 or ECDSA
with a DER ``(r, s)``). Only SHA-256 is accepted. The signature itself runs in a worker thread so a slow
token does not stall an event loop.
"""

from __future__ import annotations

import asyncio

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.keys import SigningKey

__all__ = ["KeySigner", "pyhanko_signer"]


class KeySigner(Signer):
    """A pyHanko signer whose private key operations are done by a :class:`SigningKey`."""

    def __init__(self, key: SigningKey, *, embed_roots: bool = True) -> None:
        certificate = asn1_x509.Certificate.load(key.certificate.public_bytes(Encoding.DER))
        chain = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in key.chain]
        super().__init__(
            signing_cert=certificate,
            # pyHanko adds signing_cert itself; listing it here too puts it twice in the CMS, which NSS rejects.
            cert_registry=SimpleCertificateStore.from_certs(list(chain)),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": key.algorithm.pyhanko_mechanism}),
            embed_roots=embed_roots,
            prefer_pss=False,
        )
        self.key = key
        self._dummy_size = _max_signature_size(key)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != self.key.algorithm.digest:
            raise PyHankoSigningError(
                f"{self.key.describe()} signs with SHA-256 only; {digest_algorithm!r} was requested"
            )
        if dry_run:
            return bytes(self._dummy_size)
        return await asyncio.to_thread(self.key.sign, bytes(data))


def _max_signature_size(key: SigningKey) -> int:
    """The largest signature ``key`` can produce: the modulus for RSA, a maximal DER (r, s) for ECDSA."""
    public = key.certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return (public.key_size + 7) // 8
    if isinstance(public, ec.EllipticCurvePublicKey):
        n = (public.curve.key_size + 7) // 8
        integer = 2 + n + 1  # tag, length, a leading zero byte, the value
        body = 2 * integer
        return body + (2 if body < 128 else 3)
    raise PyHankoSigningError(f"unsupported key type {type(public).__name__}")  # keys.algorithm_for refuses these


def pyhanko_signer(key: SigningKey) -> Signer:
    """A pyHanko ``Signer`` for ``key``; build it once per key and reuse it for every document."""
    return KeySigner(key)
