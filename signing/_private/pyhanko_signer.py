"""Any :class:`~signing.keys.SigningKey` as a pyHanko ``Signer``, for PAdES and other CMS signatures.

pyHanko hands ``async_sign_raw`` the DER-encoded signed attributes and a digest algorithm name and wants
the raw signature over their digest: exactly ``SigningKey.sign`` (SHA-256, then PKCS#1 v1.5 or ECDSA
with a DER ``(r, s)``). Only SHA-256 is accepted. A token's signature runs in a worker thread so a slow
token does not stall an event loop; a key in this process's memory signs in well under a millisecond,
less than the hop to a thread costs, and signs in place.

The CMS object of a PAdES signature differs from one document to the next only in two places: the
document digest (in the signed attributes) and the signature value. pyHanko builds it from asn1crypto
objects every time, walking the parsed certificates again and again (most of the time a PAdES signature
took). So for RSA keys, pyHanko builds it once with marker values, and every later signature is that DER
with the digest and the value swapped in: the same bytes pyHanko would produce (RSA PKCS#1 v1.5 values
have a fixed length, so no length changes). Anything unusual (a timestamp, extra signed attributes,
attribute providers installed by pyHanko, a dry run, non-PAdES CMS, ECDSA) takes pyHanko's own way.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import Signer
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.keys import SigningKey, SoftwareKey

__all__ = ["KeySigner", "pyhanko_signer"]

_DIGEST_SIZE = 32  # SHA-256


@dataclass(frozen=True, slots=True)
class _CmsTemplate:
    """A PAdES CMS object made by pyHanko with marker values, and where the markers are."""

    signed_attrs: tuple[bytes, bytes]  # the DER pyHanko signs, split around the digest marker
    content_info: tuple[bytes, bytes, bytes]  # the whole CMS, split around the digest and signature markers
    signature_size: int
    config: tuple[Any, ...]  # the signer's settings it was made with (see KeySigner._config)


class _MarkerSigner(Signer):
    """Makes pyHanko build a CMS object with a marker signature, keeping what it asked to sign."""

    def __init__(self, template_of: KeySigner, marker: bytes) -> None:
        super().__init__(
            signing_cert=template_of.signing_cert,
            cert_registry=template_of.cert_registry,
            signature_mechanism=template_of.signature_mechanism,
            embed_roots=template_of.embed_roots,
            prefer_pss=template_of.prefer_pss,
        )
        self.marker = marker
        self.signed: bytes | None = None

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        self.signed = bytes(data)
        return self.marker


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
        self._in_memory = isinstance(key, SoftwareKey)
        public = key.certificate.public_key()
        self._fixed_size = (public.key_size + 7) // 8 if isinstance(public, rsa.RSAPublicKey) else None
        self._template: _CmsTemplate | None = None

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != self.key.algorithm.digest:
            raise PyHankoSigningError(
                f"{self.key.describe()} signs with SHA-256 only; {digest_algorithm!r} was requested"
            )
        if dry_run:
            return bytes(self._dummy_size)
        if self._in_memory:
            return self.key.sign(bytes(data))
        return await asyncio.to_thread(self.key.sign, bytes(data))

    async def async_sign(
        self,
        data_digest: bytes,
        digest_algorithm: str,
        dry_run: bool = False,
        use_pades: bool = False,
        timestamper: Any = None,
        signed_attr_settings: PdfCMSSignedAttributes | None = None,
        is_pdf_sig: bool = True,
        encap_content_info: Any = None,
    ) -> cms.ContentInfo:
        if (
            self._fixed_size is not None
            and not dry_run
            and use_pades
            and is_pdf_sig
            and timestamper is None
            and encap_content_info is None
            and digest_algorithm == "sha256"
            and len(data_digest) == _DIGEST_SIZE
            and _only_standard_attributes(signed_attr_settings)
        ):
            template = await self._cms_template()
            if template is not None:
                before, after = template.signed_attrs
                signature = await self.async_sign_raw(before + data_digest + after, digest_algorithm)
                if len(signature) == template.signature_size:
                    head, middle, tail = template.content_info
                    return cms.ContentInfo.load(head + data_digest + middle + signature + tail)
        return await super().async_sign(
            data_digest,
            digest_algorithm,
            dry_run=dry_run,
            use_pades=use_pades,
            timestamper=timestamper,
            signed_attr_settings=signed_attr_settings,
            is_pdf_sig=is_pdf_sig,
            encap_content_info=encap_content_info,
        )

    def _config(self) -> tuple[Any, ...]:
        """Everything the template depends on, compared by identity: a change means a new template."""
        return (
            self.signing_cert,
            tuple(self.cert_registry),
            self.signature_mechanism,
            self.embed_roots,
            self.prefer_pss,
            self.signed_attr_prov_spec,
            self.unsigned_attr_prov_spec,
            tuple(self.attribute_certs),
        )

    async def _cms_template(self) -> _CmsTemplate | None:
        config = self._config()
        template = self._template
        if template is not None and _same(template.config, config):
            return template
        if self.signed_attr_prov_spec is not None or self.unsigned_attr_prov_spec is not None or config[-1]:
            return None  # pyHanko (or a caller) installed attribute providers: no template for those
        assert self._fixed_size is not None
        digest_marker, signature_marker = os.urandom(_DIGEST_SIZE), os.urandom(self._fixed_size)
        probe = _MarkerSigner(self, signature_marker)
        made = await probe.async_sign(
            digest_marker, "sha256", use_pades=True, signed_attr_settings=PdfCMSSignedAttributes()
        )
        der = made.dump()
        signed = probe.signed
        if (
            signed is None
            or signed.count(digest_marker) != 1
            or der.count(digest_marker) != 1
            or der.count(signature_marker) != 1
            or der.index(digest_marker) > der.index(signature_marker)
        ):
            return None  # not laid out as expected (cannot happen with random markers; be safe anyway)
        head, rest = der.split(digest_marker)
        middle, tail = rest.split(signature_marker)
        template = _CmsTemplate(
            signed_attrs=tuple(signed.split(digest_marker)),  # type: ignore[arg-type]
            content_info=(head, middle, tail),
            signature_size=self._fixed_size,
            config=config,
        )
        self._template = template
        return template


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(
        x is y or (isinstance(x, tuple) and isinstance(y, tuple) and _same(x, y)) for x, y in zip(a, b, strict=True)
    )


def _only_standard_attributes(settings: PdfCMSSignedAttributes | None) -> bool:
    """No signed attributes but pyHanko's PAdES defaults (the signing time is not one: PAdES puts it in /M)."""
    if settings is None:
        return True
    return settings.cades_signed_attrs is None and getattr(settings, "adobe_revinfo_attr", None) is None


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
