"""Sign and verify the sending organisation's signature on an edXML envelope.

``sign_envelope`` adds one XAdES-BES signature (XAdES-T when a timestamper is given) covering the
MessageHeader, the Bussiness block, the manifest and every attachment; ``verify_envelope`` checks it and
returns a :class:`~signing.report.VerificationReport` together with the message read from exactly the
elements that were signed (never from anything an attacker could have placed next to them).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, cast

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from schemas import (
    BUSINESS_ID,
    HEADER_ID,
    MANIFEST_ID,
    VIETNAM_TIME,
    EdxmlError,
    Message,
    ParseMode,
    SchemasError,
    TraceHeader,
    parse_tree,
    parse_xml_safely,
)
from signing._private import xmldsig
from signing._private.certpath import CertificateCheck, check_certificate
from signing._private.pathcache import PathCache, per_store, reusable_until
from signing.errors import SignError
from signing.report import (
    CertificateInfo,
    Indication,
    SignatureReport,
    SubIndication,
    VerificationReport,
)
from signing.trust import TrustStore

if TYPE_CHECKING:
    from signing.timestamps import TimestampCheck

MIN_RSA_BITS = 2048
_CLOCK_SKEW = timedelta(minutes=5)


class EnvelopeKey(Protocol):
    """What signing needs of a key: its certificate, the chain to send along, and a SHA-256 signer."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]: ...

    def sign(self, data: bytes) -> bytes:
        """SHA-256 and sign: PKCS#1 v1.5 for RSA, DER-encoded (r, s) for ECDSA."""
        ...


class Timestamper(Protocol):
    def timestamp(self, digest: bytes) -> bytes:
        """An RFC 3161 TimeStampToken (DER ContentInfo) over a SHA-256 ``digest``."""
        ...


# --- signing ------------------------------------------------------------------------------------------


def sign_envelope(
    data: bytes, key: EnvelopeKey, *, signing_time: datetime | None = None, timestamper: Timestamper | None = None
) -> bytes:
    """Return ``data`` with the organisation's envelope signature added (XAdES-BES, or -T with a timestamper)."""
    try:
        root = xmldsig.parse(data)
        parts = xmldsig.signed_parts(root)
    except (SchemasError, xmldsig.LayoutError) as e:
        raise SignError(f"cannot sign: {e}") from None
    header = parts[0].element.getparent()  # MessageHeader's: signed_parts found edXMLEnvelope/edXMLHeader
    assert header is not None
    if next(header.iterchildren(_SIGNATURE), None) is not None:
        raise SignError("the envelope is already signed")
    renamed = False
    for part in parts:
        if part.element.get("Id") != part.id:
            part.element.set("Id", part.id)  # foreign messages: name the parts, bytes are re-serialised below
            renamed = True
    when = signing_time or datetime.now(VIETNAM_TIME)
    # the TraceHeaderList (the first, as header.find would give it), else the MessageHeader (the only one)
    anchor = next(header.iterchildren(_TRACE_LIST), None)
    if anchor is None:
        anchor = parts[0].element

    if timestamper is None and not renamed and isinstance(data, bytes):
        spliced = _sign_by_splicing(data, key, parts, anchor, when)
        if spliced is not None:
            return spliced

    signature = _signature_element(key, parts, when)
    signed_info = signature.find(xmldsig.ds("SignedInfo"))
    assert signed_info is not None
    value = _signature_value(key, xmldsig.c14n(signed_info))
    value_element = signature.find(xmldsig.ds("SignatureValue"))
    assert value_element is not None
    value_element.text = base64.b64encode(value).decode("ascii")
    if timestamper is not None:
        _add_signature_timestamp(signature, value_element, timestamper)

    signature.tail = anchor.tail
    anchor.addnext(signature)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"


# The fast path. Everything in the Signature element but the digests, the signing time and the value
# depends only on the certificates and the part Ids, so it is serialised once (per key and message
# layout) with @NAME@ placeholders: once as the exclusive C14N of SignedInfo (what is signed), once as
# that of SignedProperties (what is digested), once as the element is written into the document. A
# signature then costs the part digests, two small joins, one private key operation, and splicing the
# element into the original bytes right after the anchor's end tag, where ``anchor.addnext`` puts it.
# The result is what the general path (build the element, re-serialise the whole tree) returns, byte
# for byte, for every input lxml itself wrote (build_message output); for other input the bytes outside
# the signature stay as they came instead of being re-serialised, which C14N makes invisible to the
# digests. Placeholders cannot clash: '@' is never in base64, URIs, Ids or ISO 8601 times.

_HOLE = re.compile(rb"@([A-Z0-9]+)@")


class _Holes:
    """Bytes with ``@NAME@`` holes, split once; :meth:`fill` joins the pieces with the values."""

    def __init__(self, data: bytes) -> None:
        pieces = _HOLE.split(data)
        self._literals = pieces[0::2]
        self._names = pieces[1::2]

    def fill(self, values: dict[bytes, bytes]) -> bytes:
        out = [self._literals[0]]
        for name, literal in zip(self._names, self._literals[1:], strict=True):
            out.append(values[name])
            out.append(literal)
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class _SignatureTemplate:
    signed_info: _Holes  # exclusive C14N of SignedInfo: D0…Dn (part digests), PROPS (SignedProperties digest)
    signed_properties: _Holes  # exclusive C14N of SignedProperties: TIME
    signature: _Holes  # the Signature element as lxml serialises it in the document: all of the above, VALUE
    ec_size: int | None  # ECDSA: bytes per coordinate of r || s; None for RSA


@functools.lru_cache(maxsize=64)
def _signature_template(
    certificate: x509.Certificate, chain: tuple[x509.Certificate, ...], part_ids: tuple[str, ...]
) -> _SignatureTemplate:
    sig, signed_props = _skeleton(certificate, chain, "@TIME@")
    signed_info = sig.find(xmldsig.ds("SignedInfo"))
    value = sig.find(xmldsig.ds("SignatureValue"))
    assert signed_info is not None
    assert value is not None
    for i, part_id in enumerate(part_ids):
        _reference(signed_info, f"#{part_id}", f"@D{i}@")
    _reference(signed_info, f"#{xmldsig.SIGNED_PROPERTIES_ID}", "@PROPS@", xmldsig.SIGNED_PROPERTIES_TYPE)
    value.text = "@VALUE@"
    public_key = certificate.public_key()
    ec_size = (public_key.curve.key_size + 7) // 8 if isinstance(public_key, ec.EllipticCurvePublicKey) else None
    return _SignatureTemplate(
        _Holes(xmldsig.c14n(signed_info)),
        _Holes(xmldsig.c14n(signed_props)),
        _Holes(etree.tostring(sig)),
        ec_size,
    )


_PLAIN_PARTS = frozenset({HEADER_ID, BUSINESS_ID, MANIFEST_ID})  # no large text in these: the attachments have it


def _markup_declaration_before(data: bytes, end: int) -> bool:
    """Is there a comment, CDATA section or processing instruction before ``end`` (XML declaration aside)?"""
    start = data.find(b"?>", 0, end) + 2 if data.startswith(b"<?xml") else 0
    # One-byte searches are memchr: look for the two-byte markers only where "!" or "?" occurs at all.
    return (data.find(b"!", start, end) >= 0 and data.find(b"<!", start, end) >= 0) or (
        data.find(b"?", start, end) >= 0 and data.find(b"<?", start, end) >= 0
    )


_last_template: tuple[x509.Certificate, tuple[x509.Certificate, ...], tuple[str, ...], _SignatureTemplate] | None = None


def _template_for(
    certificate: x509.Certificate, chain: tuple[x509.Certificate, ...], part_ids: tuple[str, ...]
) -> _SignatureTemplate:
    """``_signature_template``, with the last one at hand without hashing certificates (the usual case)."""
    global _last_template
    last = _last_template
    if last is not None and last[0] is certificate and last[1] == chain and last[2] == part_ids:
        return last[3]
    template = _signature_template(certificate, chain, part_ids)
    _last_template = (certificate, chain, part_ids, template)
    return template


def _sign_by_splicing(
    data: bytes, key: EnvelopeKey, parts: list[xmldsig.SignedPart], anchor: etree._Element, when: datetime
) -> bytes | None:
    """``data`` signed, with the Signature element spliced in after ``anchor``; None: use the general path."""
    # Where addnext puts the element: right after the anchor's end tag, followed by the anchor's tail. The
    # end tag is found in the bytes as "</prefix:name>" (spelt as the start tag, which lxml tells). It is the
    # anchor's if no other element has that local name, and no comment, CDATA section or processing
    # instruction comes before it (every "<" there then starts a tag: libxml2 refused any "<" in text or
    # attribute values when it parsed this). Only the bytes up to the anchor are searched.
    local = etree.QName(anchor).localname
    root = anchor.getroottree().getroot()
    if len(anchor) == 0 or sum(1 for _ in root.iter(f"{{*}}{local}")) != 1:
        return None
    end_tag = (f"</{anchor.prefix}:{local}>" if anchor.prefix else f"</{local}>").encode()
    at = data.find(end_tag)
    if at < 0 or _markup_declaration_before(data, at):
        return None
    insert = at + len(end_tag)
    tail = (anchor.tail or "").encode()
    if data[insert : insert + len(tail)] != tail or data[insert + len(tail) : insert + len(tail) + 1] != b"<":
        return None  # a tail written with character references, or not whitespace: let lxml write it

    template = _template_for(key.certificate, tuple(key.chain), tuple(p.id for p in parts))
    # From here on nothing falls back to the general path: the digests consume the tree's large texts.
    values = {
        f"D{i}".encode(): (
            xmldsig.digest_b64(p.element) if p.id in _PLAIN_PARTS else xmldsig.digest_b64_consuming(p.element)
        ).encode()
        for i, p in enumerate(parts)
    }
    values[b"TIME"] = _time_text(when).encode()
    values[b"PROPS"] = base64.b64encode(hashlib.sha256(template.signed_properties.fill(values)).digest())
    value = key.sign(template.signed_info.fill(values))
    if template.ec_size is not None:
        r, s = decode_dss_signature(value)
        value = r.to_bytes(template.ec_size, "big") + s.to_bytes(template.ec_size, "big")
    values[b"VALUE"] = base64.b64encode(value)
    whole = memoryview(data)
    return b"".join((whole[:insert], tail, template.signature.fill(values), whole[insert:]))


def _algorithm_uri(cert: x509.Certificate) -> str:
    public_key = cert.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise SignError(f"RSA key of {public_key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return xmldsig.RSA_SHA256
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return xmldsig.ECDSA_SHA256
    raise SignError(f"unsupported key type {type(public_key).__name__}; use RSA-2048+ or ECDSA P-256")


def _signature_value(key: EnvelopeKey, signed_info: bytes) -> bytes:
    value = key.sign(signed_info)
    if isinstance(key.certificate.public_key(), ec.EllipticCurvePublicKey):
        # XMLDSig wants r || s, each as wide as the curve order; keys return DER.
        curve_bits = cast(ec.EllipticCurvePublicKey, key.certificate.public_key()).curve.key_size
        size = (curve_bits + 7) // 8
        r, s = decode_dss_signature(value)
        value = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return value


_SIGNATURE, _TRACE_LIST = xmldsig.ds("Signature"), xmldsig.ed("TraceHeaderList")


def _time_text(signing_time: datetime) -> str:
    return signing_time.astimezone(VIETNAM_TIME).replace(microsecond=0).isoformat()


def _signature_element(key: EnvelopeKey, parts: list[xmldsig.SignedPart], signing_time: datetime) -> etree._Element:
    sig, signed_props = _skeleton(key.certificate, tuple(key.chain), _time_text(signing_time))
    signed_info = sig.find(xmldsig.ds("SignedInfo"))
    assert signed_info is not None
    for part in parts:
        _reference(signed_info, f"#{part.id}", xmldsig.digest_b64(part.element))
    _reference(
        signed_info,
        f"#{xmldsig.SIGNED_PROPERTIES_ID}",
        xmldsig.digest_b64(signed_props),
        xmldsig.SIGNED_PROPERTIES_TYPE,
    )
    return sig


def _skeleton(
    certificate: x509.Certificate, chain: tuple[x509.Certificate, ...], signing_time: str
) -> tuple[etree._Element, etree._Element]:
    """The Signature element without References and value, and its SignedProperties."""
    E = etree.SubElement  # noqa: N806
    sig = etree.Element(xmldsig.ds("Signature"), nsmap={"ds": xmldsig.DS}, Id=xmldsig.SIGNATURE_ID)
    signed_info = E(sig, xmldsig.ds("SignedInfo"))
    E(signed_info, xmldsig.ds("CanonicalizationMethod"), Algorithm=xmldsig.EXC_C14N)
    E(signed_info, xmldsig.ds("SignatureMethod"), Algorithm=_algorithm_uri(certificate))
    E(sig, xmldsig.ds("SignatureValue"), Id=xmldsig.SIGNATURE_VALUE_ID)
    x509_data = E(E(sig, xmldsig.ds("KeyInfo")), xmldsig.ds("X509Data"))
    for cert in (certificate, *chain):
        E(x509_data, xmldsig.ds("X509Certificate")).text = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    qualifying = etree.SubElement(
        E(sig, xmldsig.ds("Object")),
        xmldsig.xades("QualifyingProperties"),
        nsmap={"xades": xmldsig.XADES},
        Target=f"#{xmldsig.SIGNATURE_ID}",
    )
    signed_props = E(qualifying, xmldsig.xades("SignedProperties"), Id=xmldsig.SIGNED_PROPERTIES_ID)
    sig_props = E(signed_props, xmldsig.xades("SignedSignatureProperties"))
    E(sig_props, xmldsig.xades("SigningTime")).text = signing_time
    cert_ref = E(E(sig_props, xmldsig.xades("SigningCertificateV2")), xmldsig.xades("Cert"))
    cert_digest = E(cert_ref, xmldsig.xades("CertDigest"))
    E(cert_digest, xmldsig.ds("DigestMethod"), Algorithm=xmldsig.SHA256)
    E(cert_digest, xmldsig.ds("DigestValue")).text = base64.b64encode(
        hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    ).decode()
    E(cert_ref, xmldsig.xades("IssuerSerialV2")).text = base64.b64encode(_issuer_serial(certificate)).decode()
    return sig, signed_props


def _reference(signed_info: etree._Element, uri: str, digest: str, type_: str | None = None) -> None:
    ref = etree.SubElement(signed_info, xmldsig.ds("Reference"), URI=uri)
    if type_:
        ref.set("Type", type_)
    etree.SubElement(
        etree.SubElement(ref, xmldsig.ds("Transforms")), xmldsig.ds("Transform"), Algorithm=xmldsig.EXC_C14N
    )
    etree.SubElement(ref, xmldsig.ds("DigestMethod"), Algorithm=xmldsig.SHA256)
    etree.SubElement(ref, xmldsig.ds("DigestValue")).text = digest


def _issuer_serial(cert: x509.Certificate) -> bytes:
    issuer = asn1_x509.Name.load(cert.issuer.public_bytes())
    value = asn1_cms.IssuerSerial(
        {
            "issuer": asn1_x509.GeneralNames([asn1_x509.GeneralName(name="directory_name", value=issuer)]),
            "serial": cert.serial_number,
        }
    )
    return bytes(value.dump())


def _add_signature_timestamp(sig: etree._Element, value: etree._Element, timestamper: Timestamper) -> None:
    qualifying = sig.find(f"{xmldsig.ds('Object')}/{xmldsig.xades('QualifyingProperties')}")
    assert qualifying is not None
    unsigned = etree.SubElement(
        etree.SubElement(qualifying, xmldsig.xades("UnsignedProperties")), xmldsig.xades("UnsignedSignatureProperties")
    )
    stamp = etree.SubElement(unsigned, xmldsig.xades("SignatureTimeStamp"), Id="edxml-signature-timestamp")
    etree.SubElement(stamp, xmldsig.ds("CanonicalizationMethod"), Algorithm=xmldsig.EXC_C14N)
    token = timestamper.timestamp(hashlib.sha256(xmldsig.c14n(value)).digest())
    etree.SubElement(stamp, xmldsig.xades("EncapsulatedTimeStamp")).text = base64.b64encode(token).decode()


# --- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeVerification:
    """The outcome: the report, and the message read from the signed parts when they are intact."""

    report: VerificationReport
    message: Message | None  # None unless the signed parts are intact and the signature value verifies
    route: tuple[TraceHeader, ...]  # the unsigned trace, for the record
    warnings: tuple[str, ...] = ()
    warning_codes: tuple[str, ...] = ()  # the stable codes of ``warnings`` (schemas.ParseWarning.code)
    # :func:`envelope_message_id` of the envelope, once its signature value verified (None before that)
    message_id: str | None = None


class _NotPassedError(Exception):
    def __init__(self, indication: Indication, sub: SubIndication, reason: str) -> None:
        super().__init__(reason)
        self.indication, self.sub, self.reason = indication, sub, reason


PdfVerifier = Callable[[str, bytes], list[SignatureReport]]


def verify_envelope(
    data: bytes,
    trust: TrustStore,
    *,
    at: datetime | None = None,
    name: str = "envelope",
    verify_pdf: PdfVerifier | None = None,
) -> EnvelopeVerification:
    """Verify the envelope signature (and, through ``verify_pdf``, each attached PDF's signatures).

    ``at`` asks for validation at a past moment; otherwise the time a valid timestamp proves, else now.
    """
    verified_at = datetime.now(UTC)
    digest = hashlib.sha256(data).hexdigest()

    def report(*sigs: SignatureReport) -> VerificationReport:
        return VerificationReport(
            document=name, document_sha256=digest, kind="edxml", verified_at=verified_at, signatures=sigs
        )

    try:
        root = parse_xml_safely(data)
    except EdxmlError as e:
        failed = SignatureReport(
            id="envelope",
            format="XAdES",
            indication=Indication.TOTAL_FAILED,
            sub_indication=SubIndication.FORMAT_FAILURE,
            reasons=(f"unreadable: {e}",),
        )
        return EnvelopeVerification(report(failed), None, ())
    checker = _EnvelopeChecker(root, trust, at)
    envelope_report = checker.run()
    message = None
    route: tuple[TraceHeader, ...] = ()
    warnings: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    if checker.intact:
        try:
            parsed = parse_tree(root, mode=ParseMode.TOLERANT)
            message, route = parsed.message, parsed.message.trace
            warnings = tuple(str(w) for w in parsed.warnings)
            codes = tuple(w.code for w in parsed.warnings)
        except EdxmlError as e:
            envelope_report = envelope_report.model_copy(
                update={
                    "indication": Indication.TOTAL_FAILED,
                    "sub_indication": SubIndication.FORMAT_FAILURE,
                    "reasons": (f"the signed content is not a valid edXML message: {e}", *envelope_report.reasons),
                }
            )
    if message is not None and envelope_report.indication is not Indication.TOTAL_FAILED:
        envelope_report = checker.check_sender(envelope_report, message)
    sigs = [envelope_report]
    if verify_pdf is not None and message is not None and message.kind == "document":
        from signing.pdf import one_reading_budget

        with one_reading_budget():  # all the envelope's PDFs together, not each on its own
            for attachment in message.attachments:
                if _is_pdf(attachment.content_type, attachment.data):
                    sigs.extend(verify_pdf(attachment.name, attachment.data) or [_unsigned_pdf(attachment.name)])
    return EnvelopeVerification(report(*sigs), message, route, warnings, codes, checker.message_id)


def _unsigned_pdf(name: str) -> SignatureReport:
    """A document's PDF with no signature at all: the envelope's signature says who sent the file, not who issued
    the document, whose legal signature is on the file itself (NĐ 30/2020/NĐ-CP). Not a pass, then."""
    return SignatureReport(
        id=f"attachment:{name}",
        format="PAdES",
        indication=Indication.INDETERMINATE,
        sub_indication=SubIndication.SIGNED_DATA_NOT_FOUND,
        reasons=(
            f"{name} carries no signature: the document's legal signature (its signer's, then its organisation's "
            "seal) belongs on the file itself, so who issued it cannot be established",
        ),
    )


def _is_pdf(content_type: str, data: bytes) -> bool:
    """A PDF by its declared type or by its bytes: a PDF labelled otherwise has its signatures checked too."""
    # Sniffed only at the very start (white space aside), so that a text that merely mentions "%PDF-" is not
    # taken for one; a PDF with bytes before its header is then checked only if declared a PDF.
    declared = content_type.split(";", 1)[0].strip() == "application/pdf"
    return declared or data[:1024].lstrip(b"\x00\t\n\x0c\r ").startswith(b"%PDF-")


class _EnvelopeChecker:
    def __init__(self, root: etree._Element, trust: TrustStore, at: datetime | None) -> None:
        self.root, self.trust, self.at = root, trust, at
        self.intact = False
        self.parts: list[xmldsig.SignedPart] = []
        self.signer: x509.Certificate | None = None
        self.message_id: str | None = None

    def run(self) -> SignatureReport:
        base = SignatureReport(id="envelope", format="XAdES", indication=Indication.TOTAL_PASSED)
        try:
            return self._run(base)
        except _NotPassedError as f:
            return base.model_copy(
                update={
                    "indication": f.indication,
                    "sub_indication": f.sub,
                    "reasons": (f.reason,),
                    "signer": CertificateInfo.of(self.signer) if self.signer else None,
                    "signed_parts": tuple(p.label for p in self.parts) if self.intact else (),
                }
            )

    def _run(self, base: SignatureReport) -> SignatureReport:
        sig = self._the_signature()
        self._check_unique_ids()  # first: a duplicated Id is the mark of a wrapping attempt, say so
        self._check_layout()
        signed_info = _one(sig, xmldsig.ds("SignedInfo"), "SignedInfo")
        self._check_algorithms(signed_info)
        certs = self._certificates(sig)
        signed_props = self._signed_properties(sig)
        self._check_references(signed_info, signed_props)
        signer = self._signing_certificate(signed_props, certs)
        self.signer = signer
        value_element = _one(sig, xmldsig.ds("SignatureValue"), "SignatureValue")
        self._check_value(signer, signed_info, value_element)
        self.intact = True

        claimed = _signing_time(signed_props)
        checked = self._timestamp(sig, value_element)
        stamp = checked.info if checked is not None else None
        if checked is not None and not checked.sound:
            raise _NotPassedError(
                Indication.INDETERMINATE,
                SubIndication.TIMESTAMP_FAILURE,
                f"the signature timestamp is not valid: {checked.info.problem}",
            )
        # A sound timestamp from a TSA not trusted at the validation time (unknown, or its certificate revoked or
        # expired since) proves nothing: reported (timestamp.valid false), the signature validated without it.
        proved = stamp if stamp is not None and stamp.valid else None
        if proved is not None and claimed is not None and claimed > proved.time + _CLOCK_SKEW:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.TIMESTAMP_FAILURE,
                f"claimed signing time {claimed.isoformat()} is after the timestamp {proved.time.isoformat()}",
            )
        moment, source = (
            (self.at, "requested") if self.at else (proved.time, "timestamp") if proved else (None, "current")
        )
        others = [c for c in certs if c is not signer]
        check = _path_cache(self.trust).check(
            self.trust,
            signer,
            others,
            moment,
            frozenset({"non_repudiation"}) if _has_only_nr(signer) else frozenset({"digital_signature"}),
        )
        level = "B-T" if stamp else "B-B"
        return base.model_copy(
            update={
                "level": level,
                "indication": check.indication,
                "sub_indication": check.sub_indication,
                "reasons": tuple(check.reasons),
                "signer": CertificateInfo.of(signer),
                "chain": check.chain,
                "claimed_signing_time": claimed,
                "validation_time": moment or datetime.now(UTC),
                "validation_time_source": source,
                "timestamp": stamp,
                "revocation": check.revocation,
                "signed_parts": tuple(p.label for p in self.parts),
            }
        )

    # -- structure ----------------------------------------------------------------------------------
    def _the_signature(self) -> etree._Element:
        sigs = list(self.root.iter(xmldsig.ds("Signature")))
        if not sigs:
            legacy = self.root.find(
                f"{xmldsig.ed('edXMLEnvelope')}/{xmldsig.ed('edXMLHeader')}/{xmldsig.ed('Signature')}"
            )
            why = " (only a legacy placeholder block without the XMLDSig namespace)" if legacy is not None else ""
            raise _NotPassedError(
                Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"the envelope is not signed{why}"
            )
        if len(sigs) > 1:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"the envelope holds {len(sigs)} signatures; exactly one is expected",
            )
        sig = sigs[0]
        parent = sig.getparent()
        grandparent = parent.getparent() if parent is not None else None
        if (
            parent is None
            or parent.tag != xmldsig.ed("edXMLHeader")
            or grandparent is None
            or grandparent.tag != xmldsig.ed("edXMLEnvelope")
        ):
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                "the signature is not in edXMLHeader, where the envelope signature belongs",
            )
        return sig

    def _check_layout(self) -> None:
        try:
            self.parts = xmldsig.signed_parts(self.root)
        except xmldsig.LayoutError as e:
            raise _NotPassedError(Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, str(e)) from None
        for element in self.root.iter():
            # parse_xml_safely drops comments and PIs and refuses entities: every node here is an element.
            allowed = xmldsig.ALLOWED_CHILDREN.get(str(element.tag))
            if allowed is None:
                continue
            for child in element:
                if child.tag not in allowed:
                    raise _NotPassedError(
                        Indication.TOTAL_FAILED,
                        SubIndication.FORMAT_FAILURE,
                        f"unsigned element {etree.QName(child).localname} inside "
                        f"{etree.QName(element).localname}: only the route may be unsigned",
                    )

    def _check_unique_ids(self) -> None:
        seen: dict[str, int] = {}
        for element in self.root.iter():
            for attr in ("Id", "ID", "id"):
                value = element.get(attr)
                if value is not None:
                    seen[value] = seen.get(value, 0) + 1
        dupes = sorted(k for k, n in seen.items() if n > 1)
        if dupes:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"Id {dupes[0]!r} is used by more than one element (signature wrapping?)",
            )

    def _check_algorithms(self, signed_info: etree._Element) -> None:
        c14n = _one(signed_info, xmldsig.ds("CanonicalizationMethod"), "CanonicalizationMethod").get("Algorithm")
        if c14n != xmldsig.EXC_C14N:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                f"canonicalisation {c14n} is not accepted; exclusive C14N is required",
            )
        method = _one(signed_info, xmldsig.ds("SignatureMethod"), "SignatureMethod").get("Algorithm")
        if method not in (xmldsig.RSA_SHA256, xmldsig.ECDSA_SHA256):
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"signature algorithm {method} is not accepted (RSA-SHA256 or ECDSA-SHA256)",
            )

    def _certificates(self, sig: etree._Element) -> list[x509.Certificate]:
        certs = []
        for element in sig.iterfind(
            f"{xmldsig.ds('KeyInfo')}/{xmldsig.ds('X509Data')}/{xmldsig.ds('X509Certificate')}"
        ):
            try:
                certs.append(x509.load_der_x509_certificate(base64.b64decode(element.text or "")))
            except ValueError as e:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.FORMAT_FAILURE,
                    f"KeyInfo holds a certificate that cannot be read: {e}",
                ) from None
        if not certs:
            raise _NotPassedError(
                Indication.INDETERMINATE,
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "the signature carries no certificate (KeyInfo/X509Data)",
            )
        return certs

    def _signed_properties(self, sig: etree._Element) -> etree._Element:
        found = sig.findall(
            f"{xmldsig.ds('Object')}/{xmldsig.xades('QualifyingProperties')}/{xmldsig.xades('SignedProperties')}"
        )
        if len(found) != 1 or found[0].get("Id") != xmldsig.SIGNED_PROPERTIES_ID:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                "the signature has no (or more than one) XAdES SignedProperties",
            )
        return found[0]

    def _check_references(self, signed_info: etree._Element, signed_props: etree._Element) -> None:
        expected = {f"#{p.id}": (p.label, p.element) for p in self.parts}
        expected[f"#{xmldsig.SIGNED_PROPERTIES_ID}"] = ("SignedProperties", signed_props)
        covered = set()
        for ref in signed_info.iterfind(xmldsig.ds("Reference")):
            uri = ref.get("URI", "")
            if uri not in expected:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.FORMAT_FAILURE,
                    f"the signature references {uri or 'the whole document'}, which is not a part of this profile",
                )
            if uri in covered:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"{uri} is referenced twice"
                )
            label, element = expected[uri]
            transforms = [
                t.get("Algorithm") for t in ref.iterfind(f"{xmldsig.ds('Transforms')}/{xmldsig.ds('Transform')}")
            ]
            if any(t != xmldsig.EXC_C14N for t in transforms):
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.FORMAT_FAILURE,
                    f"reference to {label} uses transforms {transforms}; only exclusive C14N is accepted",
                )
            algorithm = _one(ref, xmldsig.ds("DigestMethod"), "DigestMethod").get("Algorithm", "")
            if algorithm not in xmldsig.DIGESTS:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.SIG_CONSTRAINTS_FAILURE,
                    f"digest algorithm {algorithm} is not accepted",
                )
            if element.get("Id") != uri[1:]:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.SIGNED_DATA_NOT_FOUND,
                    f"{label} does not carry Id {uri[1:]!r}: the signature does not cover it",
                )
            stated = (_one(ref, xmldsig.ds("DigestValue"), "DigestValue").text or "").strip()
            if xmldsig.digest_b64(element, algorithm) != stated:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.HASH_FAILURE,
                    f"{label} was changed after signing (digest mismatch)",
                )
            covered.add(uri)
        missing = [label for uri, (label, _) in expected.items() if uri not in covered]
        if missing:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.SIGNED_DATA_NOT_FOUND,
                f"not covered by the signature: {', '.join(missing)}",
            )

    def _signing_certificate(self, signed_props: etree._Element, certs: list[x509.Certificate]) -> x509.Certificate:
        digest = signed_props.findtext(
            f".//{xmldsig.xades('SigningCertificateV2')}/{xmldsig.xades('Cert')}/{xmldsig.xades('CertDigest')}/{xmldsig.ds('DigestValue')}"
        )
        if not digest:
            raise _NotPassedError(
                Indication.INDETERMINATE,
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "SignedProperties does not name the signing certificate (SigningCertificateV2)",
            )
        for cert in certs:
            if base64.b64encode(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()).decode() == digest.strip():
                return cert
        raise _NotPassedError(
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            "no certificate in KeyInfo matches the signed SigningCertificateV2 digest",
        )

    def _check_value(self, signer: x509.Certificate, signed_info: etree._Element, value: etree._Element) -> None:
        try:
            raw = base64.b64decode(value.text or "", validate=False)
        except ValueError:
            raw = b""
        data = xmldsig.c14n(signed_info)
        key = signer.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                if key.key_size < MIN_RSA_BITS:
                    raise _NotPassedError(
                        Indication.TOTAL_FAILED,
                        SubIndication.SIG_CONSTRAINTS_FAILURE,
                        f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required",
                    )
                key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                size = (key.curve.key_size + 7) // 8
                if len(raw) != 2 * size:
                    raise InvalidSignature
                der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
                key.verify(der, data, ec.ECDSA(hashes.SHA256()))
            else:
                raise _NotPassedError(
                    Indication.TOTAL_FAILED,
                    SubIndication.SIG_CONSTRAINTS_FAILURE,
                    f"unsupported key type {type(key).__name__}",
                )
        except InvalidSignature:
            raise _NotPassedError(
                Indication.TOTAL_FAILED,
                SubIndication.SIG_CRYPTO_FAILURE,
                "the signature value does not verify with the signer's certificate",
            ) from None
        self.message_id = hashlib.sha256(raw).hexdigest()  # as envelope_message_id: it names this act of signing

    def _timestamp(self, sig: etree._Element, value: etree._Element) -> TimestampCheck | None:
        """The signature timestamp, its TSA validated at the requested time, else now (not at the token's own
        time: ETSI EN 319 102-1, as for PDFs)."""
        token_text = sig.findtext(f".//{xmldsig.xades('SignatureTimeStamp')}/{xmldsig.xades('EncapsulatedTimeStamp')}")
        if token_text is None:
            return None
        from signing.timestamps import check_timestamp_token

        return check_timestamp_token(
            base64.b64decode(token_text), hashlib.sha256(xmldsig.c14n(value)).digest(), self.trust, at=self.at
        )

    # -- who signed -----------------------------------------------------------------------------------
    def check_sender(self, report: SignatureReport, message: Message) -> SignatureReport:
        """The signer must be the organisation in ``From``: by the registry's certificates, else the UID."""
        sender = message.header.from_.organ_id
        assert self.signer is not None
        registry = self.trust.registry
        entry = registry.get(sender) if registry is not None else None
        signer_der = self.signer.public_bytes(Encoding.DER)
        problem = None
        if entry is not None and entry.certificates:
            known = {x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER) for pem in entry.certificates}
            if signer_der not in known:
                problem = f"the signer is not one of the certificates registered for {sender}"
        else:
            uid = CertificateInfo.of(self.signer).organ_code
            if uid is None:
                return report.model_copy(
                    update={
                        "indication": Indication.INDETERMINATE
                        if report.indication is Indication.TOTAL_PASSED
                        else report.indication,
                        "sub_indication": report.sub_indication or SubIndication.SENDER_MISMATCH,
                        "reasons": (
                            *report.reasons,
                            f"nothing ties the signing certificate to {sender}: "
                            "it has no organisation code and the registry has no certificate for it",
                        ),
                    }
                )
            if uid != sender:
                problem = f"signed by organisation {uid}, but From says {sender}"
        if problem is None:
            return report
        return report.model_copy(
            update={
                "indication": Indication.TOTAL_FAILED,
                "sub_indication": SubIndication.SENDER_MISMATCH,
                "reasons": (problem, *report.reasons),
            }
        )


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise _NotPassedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"{what}: expected exactly one, found {len(found)}"
        )
    return found[0]


def _signing_time(signed_props: etree._Element) -> datetime | None:
    text = signed_props.findtext(f".//{xmldsig.xades('SigningTime')}")
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _NotPassedError(
            Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, f"SigningTime {text!r} is not an ISO 8601 date-time"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=VIETNAM_TIME)


def _has_only_nr(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return usage.content_commitment and not usage.digital_signature


# --- certificate path validations, remembered briefly per trust store -----------------------------------


class _PathCache(PathCache[CertificateCheck]):
    """Passed envelope path validations of one trust store, reused for at most a minute.

    What makes a validation reusable, and for how long, is in ``signing._private.pathcache``; the key
    here: the signer's certificate and the other certificates the signature carried (they may complete
    the path), the key usage asked for, the validation moment (None: now), the store's revocation policy
    and whether it may fetch, and the revocation data the store knows.
    """

    def check(
        self,
        trust: TrustStore,
        signer: x509.Certificate,
        others: list[x509.Certificate],
        moment: datetime | None,
        key_usage: frozenset[str],
    ) -> CertificateCheck:
        revinfo = trust.revocation_snapshot()
        key = (signer, tuple(others), key_usage, moment, trust.revocation, trust.allow_fetching, revinfo)
        now = datetime.now(UTC)
        found = self.get(key, now)
        if found is not None:
            return found
        check = check_certificate(trust, signer, others, moment, key_usage=key_usage)
        until = reusable_until(
            trust,
            passed=check.indication is Indication.TOTAL_PASSED,
            # check_certificate keeps what it fetched in the store
            learnt_revocation_data=trust.revocation_snapshot() != revinfo,
            had_revocation_data=bool(check.revocation),
            presented=[signer, *others],
            path_not_after=[c.not_after for c in check.chain],
            moment=moment,
            now=now,
            revinfo=revinfo,
        )
        if until is not None:
            self.put(key, check, now, until)
        return check


def _path_cache(trust: TrustStore) -> _PathCache:
    return per_store(trust, _PathCache)


def envelope_message_id(data: bytes) -> str:
    """The message id of a signed envelope: SHA-256 (hex) of its signature value.

    It names one act of signing, so it is the same at every hop (the route is outside the signature) and on
    every retry of the same bytes, and nobody can give another message's id to an envelope they sign.
    """
    try:
        root = xmldsig.parse(data)
    except (SchemasError, xmldsig.LayoutError) as e:
        raise SignError(f"not a signed edXML envelope: {e}") from None
    values = root.findall(
        f"{xmldsig.ed('edXMLEnvelope')}/{xmldsig.ed('edXMLHeader')}/{_SIGNATURE}/{xmldsig.ds('SignatureValue')}"
    )
    if len(values) != 1:
        raise SignError(f"expected one envelope signature value, found {len(values)}")
    try:
        value = base64.b64decode("".join((values[0].text or "").split()), validate=True)
    except ValueError:
        raise SignError("the envelope signature value is not base64") from None
    if not value:
        raise SignError("the envelope signature value is empty")
    return hashlib.sha256(value).hexdigest()
