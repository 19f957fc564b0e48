"""Verify the XML signature on an XML document that is not a Liên thông envelope (a file an auditor brings).

The signature is checked with signxml (its XAdES verifier when the signature carries XAdES signed
properties). Only what the signature covers is handed back, in ``signed_elements``: the elements signxml
rebuilt from the canonical bytes it digested, never the document that was read. A caller that reads
anything else (the first ``Assertion`` in the file, say) can be fooled by signature wrapping.

Whose key it is comes from the caller: a :class:`~signing.trust.TrustStore` (the certificate embedded in
the signature must chain to one of its roots), a pinned certificate, a public key, or an HMAC secret.
Without any of them the key the document carries is used: the signature may verify, but nothing says
whose it is, so the result is at best ``INDETERMINATE``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from schemas import SchemasError, parse_xml_safely
from signing._private.certpath import check_certificate
from signing.report import CertificateInfo, Indication, SignatureReport, SubIndication
from signing.trust import TrustStore

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
_NS = {"ds": DS, "xades": XADES}
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"
_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
_KNOWN_TRANSFORMS = frozenset({_ENVELOPED, _BASE64, *(m.value for m in CanonicalizationMethod)})


@dataclass(frozen=True)
class GenericXmlVerification:
    """The report, and exactly the elements the signature covers (empty unless the signature verified).

    ``signed_elements`` are detached copies rebuilt from the signed bytes, never nodes of the document
    that was read. Read them only when ``report.indication`` says the signer is who you expect.
    """

    report: SignatureReport
    signed_elements: tuple[etree._Element, ...] = ()


class _NotVerifiedError(Exception):
    def __init__(self, indication: Indication, sub: SubIndication, reason: str) -> None:
        super().__init__(reason)
        self.indication, self.sub, self.reason = indication, sub, reason


def verify_xml_signature(
    data: bytes,
    *,
    trust: TrustStore | None = None,
    pinned_certificate: x509.Certificate | None = None,
    public_key_pem: bytes | None = None,
    hmac_key: bytes | None = None,
    at: datetime | None = None,
    expect_references: int | None = 1,
    id_attributes: Iterable[str] = ("Id", "ID", "AssertionID"),
    allow_sha1: bool = False,
) -> GenericXmlVerification:
    """Verify the first ``ds:Signature`` in ``data`` (document order).

    Give at most one of ``trust``, ``pinned_certificate``, ``public_key_pem`` and ``hmac_key``.
    ``at`` is when certificates must be valid (default: now). ``expect_references`` is how many parts the
    signature must cover, not counting XAdES ``SignedProperties`` and a signed ``KeyInfo`` (None: any).
    SHA-1 (in digests and signature methods) is refused unless ``allow_sha1``; a truncated HMAC always is.
    """
    anchors = [a for a in (trust, pinned_certificate, public_key_pem, hmac_key) if a is not None]
    if len(anchors) > 1:
        raise ValueError("give at most one of trust, pinned_certificate, public_key_pem and hmac_key")
    xades = False
    base = SignatureReport(
        id="xml-signature",
        format="XMLDSig",
        indication=Indication.TOTAL_FAILED,
        validation_time=at or datetime.now(UTC),
        validation_time_source="requested" if at else "current",
    )
    try:
        root = _parse(data)
        signature = _first_signature(root)
        xades = _is_xades(signature)
        _check_algorithms(signature, allow_sha1)
        if xades:
            base = base.model_copy(update={"format": "XAdES"})
        embedded = _embedded_certificates(signature)
        key_cert = _key_certificate(embedded, trust, pinned_certificate, public_key_pem, hmac_key)
        results = _run_signxml(data, xades, key_cert, hmac_key, at, tuple(id_attributes), allow_sha1)
    except _NotVerifiedError as e:
        return GenericXmlVerification(
            base.model_copy(update={"indication": e.indication, "sub_indication": e.sub, "reasons": (e.reason,)})
        )

    signed = tuple(r.signed_xml for r in results if r.signed_xml is not None)
    parts = tuple(_describe(r) for r in results)
    counted = [r for r in results if r.signed_xml is None or r.signed_xml.tag not in _NOT_COUNTED]
    base = base.model_copy(update={"signed_parts": parts, "claimed_signing_time": _signing_time(signed)})
    if expect_references is not None and len(counted) != expect_references:
        reason = f"the signature covers {len(counted)} part(s); {expect_references} expected"
        return GenericXmlVerification(
            base.model_copy(update={"sub_indication": SubIndication.FORMAT_FAILURE, "reasons": (reason,)})
        )

    if trust is not None:
        assert key_cert is not None
        report = _chain_report(base, trust, key_cert, [c for c in embedded if c != key_cert], at)
    elif anchors:
        signer = CertificateInfo.of(key_cert) if key_cert is not None and public_key_pem is None else None
        report = base.model_copy(update={"indication": Indication.TOTAL_PASSED, "signer": signer})
    else:
        report = base.model_copy(
            update={
                "indication": Indication.INDETERMINATE,
                "sub_indication": SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                "reasons": (
                    "the signature verifies with the key the document itself carries, but no trusted root, "
                    "certificate, key or secret was given to say whose key that is",
                ),
                "signer": CertificateInfo.of(key_cert) if key_cert is not None else None,
            }
        )
    return GenericXmlVerification(report, signed)


_NOT_COUNTED = frozenset({f"{{{XADES}}}SignedProperties", f"{{{DS}}}KeyInfo"})


def _chain_report(
    base: SignatureReport,
    trust: TrustStore,
    cert: x509.Certificate,
    others: list[x509.Certificate],
    at: datetime | None,
) -> SignatureReport:
    """The report once the signature verified with ``cert``: does ``cert`` chain to a trusted root?"""
    signer = CertificateInfo.of(cert)
    if cert in trust.roots:  # trusted as such; signxml already checked it is valid at ``at``
        return base.model_copy(update={"indication": Indication.TOTAL_PASSED, "signer": signer, "chain": (signer,)})
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        key_usage = (
            frozenset({"non_repudiation"})
            if usage.content_commitment and not usage.digital_signature
            else frozenset({"digital_signature"})
        )
    except x509.ExtensionNotFound:  # RFC 5280 4.2.1.3: no KeyUsage, no restriction
        key_usage = frozenset()
    check = check_certificate(trust, cert, others, at, key_usage=key_usage)
    return base.model_copy(
        update={
            "indication": check.indication,
            "sub_indication": check.sub_indication,
            "reasons": tuple(check.reasons),
            "signer": signer,
            "chain": check.chain,
            "revocation": check.revocation,
        }
    )


def _parse(data: bytes) -> etree._Element:
    try:
        return parse_xml_safely(data)
    except SchemasError as e:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"the document was refused: {e}"
        ) from None


def _first_signature(root: etree._Element) -> etree._Element:
    signature = root if root.tag == f"{{{DS}}}Signature" else root.find(".//ds:Signature", _NS)
    if signature is None:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, "the document has no XML signature (ds:Signature)"
        )
    return signature


def _is_xades(signature: etree._Element) -> bool:
    return signature.find("ds:Object/xades:QualifyingProperties/xades:SignedProperties", _NS) is not None


def _check_algorithms(signature: etree._Element, allow_sha1: bool) -> None:
    """Refuse, before any work, algorithms we do not verify: truncated HMACs, unknown transforms, SHA-1."""
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", _NS)
    uri = method.get("Algorithm", "") if method is not None else ""
    length = method.find("ds:HMACOutputLength", _NS) if method is not None else None
    if length is not None:
        full = _hmac_bits(uri)
        text = (length.text or "").strip()
        if full is None or not text.isdigit() or int(text) != full:
            raise _NotVerifiedError(
                Indication.TOTAL_FAILED,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the signature claims an HMAC truncated to {text or '?'} bits; only full-length HMACs are "
                "accepted (a truncated HMAC can be forged, CVE-2009-0217)",
            )
    for transform in signature.iterfind("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform", _NS):
        algorithm = transform.get("Algorithm", "")
        if algorithm not in _KNOWN_TRANSFORMS and not _redundant_xpath(transform):
            raise _NotVerifiedError(
                Indication.INDETERMINATE,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"a reference uses the transform {algorithm!r}, which is not supported",
            )
    if not allow_sha1:
        used = [uri] + [
            d.get("Algorithm", "") for d in signature.iterfind("ds:SignedInfo/ds:Reference/ds:DigestMethod", _NS)
        ]
        if any(u.endswith(("sha1", "#sha1-rsa-MGF1")) for u in used):
            raise _NotVerifiedError(
                Indication.INDETERMINATE,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "the signature uses SHA-1, which is no longer accepted (verify with allow_sha1 for old documents)",
            )


def _redundant_xpath(transform: etree._Element) -> bool:
    """An XPath filter that only drops signatures, next to the enveloped-signature transform: a no-op.

    signxml skips transforms it does not know; this is the one it may skip safely (xmlsec writes it).
    """
    if transform.get("Algorithm") != _XPATH:
        return False
    xpath = transform.find("ds:XPath", _NS)
    parent = transform.getparent()
    if xpath is None or parent is None or not any(t.get("Algorithm") == _ENVELOPED for t in parent):
        return False
    match = re.fullmatch(r"not\(ancestor-or-self::([A-Za-z_][\w.-]*):Signature\)", "".join((xpath.text or "").split()))
    return match is not None and xpath.nsmap.get(match[1]) == DS


def _hmac_bits(uri: str) -> int | None:
    try:
        method = SignatureMethod(uri)
    except (ValueError, InvalidInput):
        return None
    if not method.name.startswith("HMAC_"):
        return None
    return {"HMAC_SHA1": 160, "HMAC_SHA224": 224, "HMAC_SHA256": 256, "HMAC_SHA384": 384, "HMAC_SHA512": 512}.get(
        method.name
    )


def _embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certs = []
    for element in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join((element.text or "").split()))))
        except ValueError as e:
            raise _NotVerifiedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"KeyInfo holds a certificate that cannot be read: {e}",
            ) from None
    return certs


def _key_certificate(
    embedded: list[x509.Certificate],
    trust: TrustStore | None,
    pinned: x509.Certificate | None,
    public_key_pem: bytes | None,
    hmac_key: bytes | None,
) -> x509.Certificate | None:
    """The certificate whose key must verify the signature (None: an HMAC, or the document's KeyValue)."""
    if pinned is not None:
        return pinned
    if public_key_pem is not None:
        return _stand_in_certificate(public_key_pem)
    if hmac_key is not None:
        return None
    if embedded:
        return _leaf(embedded)
    if trust is not None:
        raise _NotVerifiedError(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            "the signature carries no certificate (KeyInfo/X509Data/X509Certificate) to check against the "
            "trusted roots",
        )
    return None


def _leaf(certs: list[x509.Certificate]) -> x509.Certificate:
    """The certificate that issued none of the others (the first such, in document order)."""
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    return next((c for c in certs if c.subject not in issuers), certs[0])


def _stand_in_certificate(public_key_pem: bytes) -> x509.Certificate:
    """A certificate that only carries ``public_key_pem``, so that signxml verifies with that key alone."""
    try:
        key = load_pem_public_key(public_key_pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"public_key_pem is not a PEM public key: {e}") from None
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | dsa.DSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise ValueError(f"public_key_pem holds a {type(key).__name__}, which cannot verify XML signatures")
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public key given by the caller")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key)
        .serial_number(1)
        .not_valid_before(datetime(1970, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(9999, 12, 31, tzinfo=UTC))
        .sign(issuer_key, hashes.SHA256())
    )


class _RootC14nMixin:
    """Canonicalise a copy of each node parsed as a document root, never the node in place.

    libxml2 2.14 (lxml 6.1) writes a spurious ``xmlns=""`` on grandchildren when inclusive C14N is applied
    to an element that is not the document root and sits in a default namespace; SignedInfo in
    ``<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">`` then never verifies. signxml already
    re-parses references this way before digesting them; this does the same for SignedInfo. (An ``xml:*``
    attribute on the Signature element would then not be inherited by SignedInfo, as signxml already
    drops those of the Signature's ancestors; no signature in the corpus has one.)
    """

    def _c14n(
        self,
        nodes: etree._Element | list[etree._Element],
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        own = nodes if isinstance(nodes, list) else [nodes]
        rooted = [n if n.getparent() is None else _reparse(n) for n in own]
        return super()._c14n(rooted, algorithm, inclusive_ns_prefixes)  # type: ignore[misc, no-any-return]


def _reparse(node: etree._Element) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(etree.tostring(node), parser)


class _XmlVerifier(_RootC14nMixin, XMLVerifier):
    pass


class _XadesVerifier(_RootC14nMixin, XAdESVerifier):
    pass


def _run_signxml(
    data: bytes,
    xades: bool,
    key_cert: x509.Certificate | None,
    hmac_key: bytes | None,
    at: datetime | None,
    id_attributes: tuple[str, ...],
    allow_sha1: bool,
) -> list[VerifyResult]:
    config_type = XAdESSignatureConfiguration if xades else SignatureConfiguration
    methods = frozenset(m for m in SignatureMethod if allow_sha1 or "SHA1" not in m.name)
    if hmac_key is not None:
        methods = frozenset(m for m in methods if m.name.startswith("HMAC_"))
    config = config_type(
        require_x509=key_cert is not None,
        expect_references=True,
        signature_methods=methods,
        digest_algorithms=frozenset(d for d in DigestAlgorithm if allow_sha1 or "SHA1" not in d.name),
        verification_time=at,
    )
    verifier = _XadesVerifier() if xades else _XmlVerifier()
    verifier.id_attributes = id_attributes
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        result = verifier.verify(data, x509_cert=key_cert, hmac_key=hmac_key, parser=parser, expect_config=config)
    except InvalidDigest as e:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, f"a signed part was changed after signing: {e}"
        ) from None
    except InvalidCertificate as e:
        sub = SubIndication.NOT_YET_VALID if "not yet valid" in str(e) else SubIndication.EXPIRED
        if "valid" not in str(e):
            sub = SubIndication.NO_CERTIFICATE_CHAIN_FOUND
        raise _NotVerifiedError(Indication.INDETERMINATE, sub, f"the signing certificate is not usable: {e}") from None
    except (InvalidSignature, CryptoInvalidSignature) as e:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            f"the signature value does not verify with the signer's key: {e or 'mismatch'}",
        ) from None
    except InvalidInput as e:
        if "Unrecognized" in str(e) or "forbidden by configuration" in str(e):
            raise _NotVerifiedError(
                Indication.INDETERMINATE,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the signature uses an algorithm that is not accepted: {e}",
            ) from None
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"the signature cannot be processed: {e}"
        ) from None
    except etree.DocumentInvalid as e:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED,
            SubIndication.FORMAT_FAILURE,
            f"the signature does not follow the XML Signature schema: {e}",
        ) from None
    except (SignXMLException, UnsupportedAlgorithm, NotImplementedError, KeyError, ValueError, TypeError) as e:
        raise _NotVerifiedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"the signature cannot be processed: {e!r}"
        ) from None
    return result if isinstance(result, list) else [result]


def _describe(result: VerifyResult) -> str:
    if result.signed_xml is None:
        return f"{len(result.signed_data)} bytes of non-XML data"
    element = result.signed_xml
    ident = next(
        (element.get(a) for a in element.attrib if etree.QName(a).localname in ("Id", "ID", "AssertionID")), None
    )
    name = etree.QName(element).localname
    return f"{name} {ident}" if ident else name


def _signing_time(signed: tuple[etree._Element, ...]) -> datetime | None:
    for element in signed:
        if element.tag == f"{{{XADES}}}SignedProperties":
            text = element.findtext(".//xades:SigningTime", namespaces=_NS)
            if text:
                try:
                    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
                except ValueError:
                    return None
    return None
