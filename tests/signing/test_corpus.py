"""The third-party corpus in ``../shared/corpus`` gives the outcomes its README names.

One table, one test. Each row is a corpus file, what the README expects of it and the anchor and time
to verify with:

* ``VALID``: crypto and integrity pass with the stated anchor at the stated time. With no anchor at all
  (the key sits in the document's ``KeyValue``) the best a verifier can say is INDETERMINATE with
  NO_CERTIFICATE_CHAIN_FOUND: the signature verifies, but nothing says whose key it is.
* ``REJECT``: never TOTAL_PASSED.
* ``FLAG``: the signature bytes verify but the document was changed or the scope is unsafe: never
  TOTAL_PASSED (``sub`` says how it must be reported).
* ``PARSE_REJECT``: refused as FORMAT_FAILURE, quickly, with nothing returned as signed.
* ``UNSIGNED``: a PDF without signatures.

Only what was signed is ever handed back: for XML every row checks that ``signed_elements`` are detached
copies, and the signature-wrapping rows that the attacker's element is never among them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pytest
from asn1crypto import tsp
from cryptography import x509
from lxml import etree
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.pdf import verify_pdf
from signing.report import Indication, SubIndication
from signing.timestamps import token_time, verify_timestamp_token
from signing.trust import TrustStore, load_certificates
from signing.xmldsig import verify_xml_signature


class Outcome(StrEnum):
    VALID = "VALID"
    REJECT = "REJECT"
    FLAG = "FLAG"
    PARSE_REJECT = "PARSE-REJECT"
    UNSIGNED = "UNSIGNED"


VALID, REJECT, FLAG, PARSE_REJECT, UNSIGNED = Outcome


@dataclass(frozen=True)
class Row:
    path: str  # relative to the corpus
    kind: Literal["xml", "pdf", "tsr"]
    expect: Outcome
    # XML: at most one anchor. ``pin`` is a certificate file, or "embedded" (the signature's own certificate);
    # for PDFs "signer" pins the signer certificate of ``field``; for .tsr files "spoofed" trusts only the
    # injected "Spoofed TSA" certificate.
    hmac: bytes | str | None = None  # a secret, or a corpus file holding it
    pin: str | None = None
    key: str | None = None  # a PEM public key file
    roots: tuple[str, ...] = ()  # trusted roots
    intermediates: tuple[str, ...] = ()  # known, untrusted certificates
    chain: str = ""  # .tsr: the TSA chain file (root last, DER or PEM); the rest is supplied as known
    root_only: bool = False  # .tsr: trust the chain's root and supply nothing else
    at: datetime | Literal["signing-time"] | None = None  # "signing-time": the XAdES SigningTime
    sha1: bool = False  # legacy vectors: SHA-1 allowed
    refs: int | None = 1
    sub: SubIndication | None = None
    field: str | None = None  # PDF: the signature to check (None: every one)
    message: bytes | str = b"hello"  # .tsr: the timestamped data, or a corpus file holding it
    not_signed: tuple[str, ...] = ()  # XML: ID fragments never to be found among the signed elements
    tsa: str = ""  # .tsr: part of the TSA's subject when VALID


def row(label: str, path: str, kind: Literal["xml", "pdf", "tsr"], expect: Outcome, **kw: Any) -> Any:
    xfail = kw.pop("xfail", None)
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Row(path, kind, expect, **kw), id=label, marks=marks)


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


IOP = "signxml/test/interop/"
M = IOP + "merlin-xmldsig-twenty-three/"
PH = IOP + "phaos-xmldsig-three/"
AE = IOP + "aleksey-xmldsig-01-enveloped/"
TR = IOP + "TR2012/"
WS = IOP + "ws-security/ws.js/"
XA = "signxml/test/xades/"
XS = "xmlsec/tests/aleksey-xmldsig-01/"
XK = "xmlsec/tests/keys/"
SA = "santuario/src/test/resources/"
SD = SA + "org/apache/xml/security/test/javax/xml/crypto/dsig/"
SW = "pysaml2/tests/xsw/"
PD = "pyHanko/internal/common-test-utils/src/pyhanko_testing_commons/test_data/data/"
PP = PD + "pdf/"
TS = "rfc3161-client/test/fixtures/"
DX = "defusedxml/xmltestdata/"
SIGSTAGE = TS + "sigstage/ts_chain.pem"
TEST_TSA = TS + "test_tsa/ts_chain.pem"

PHAOS_TIME = utc(2005, 6, 1)  # the Phaos certificates: 2002-04-29 .. 2012-04-26
SAML_TIME = utc(2009, 10, 20)  # pysaml2/pyXMLSecurity test.pem: 2009-10-06 .. 2009-11-05
TESTING_CA = {"roots": (PD + "crypto/testing-ca/root/root.cert.pem", PD + "crypto/selfsigned.cert.pem")}
TESTING_CA_INTERM = (PD + "crypto/testing-ca/root/interm.cert.pem",)
LORD_TESTERINO_TIME = utc(2020, 11, 2)  # "Lord Testerino <test@example.com>": 2020-01-01 .. 2021-01-01
ALICE_TIME = utc(2021, 6, 1)  # certomancer "Alice": 2020-01-01 .. 2022-01-01

ROWS = [
    # -- 1a. W3C XMLDSig interop --------------------------------------------------------------------
    *(
        row(f"merlin-{n}", M + f"signature-{n}.xml", "xml", VALID, sha1=True)
        for n in ("enveloping-rsa", "enveloping-dsa", "enveloping-b64-dsa", "enveloped-dsa")
    ),
    row("merlin-hmac-sha1", M + "signature-enveloping-hmac-sha1.xml", "xml", VALID, hmac=b"secret", sha1=True),
    row(
        "merlin-hmac-sha1-40",
        M + "signature-enveloping-hmac-sha1-40.xml",
        "xml",
        REJECT,
        hmac=b"secret",
        sha1=True,
        sub=SubIndication.SIG_CONSTRAINTS_FAILURE,
    ),
    row("merlin-sha1-refused-by-default", M + "signature-enveloping-rsa.xml", "xml", REJECT),
    row(
        "merlin-hmac-sha1-wrong-key", M + "signature-enveloping-hmac-sha1.xml", "xml", REJECT, hmac=b"wrong", sha1=True
    ),
    *(
        row(
            f"phaos-{n}",
            PH + f"signature-{n}.xml",
            "xml",
            VALID,
            pin=PH + "certs/rsa-cert.pem",
            at=PHAOS_TIME,
            sha1=True,
        )
        for n in ("rsa-enveloped", "rsa-enveloping", "rsa-manifest")
    ),
    row(
        "phaos-bad-digest",
        PH + "signature-rsa-enveloped-bad-digest-val.xml",
        "xml",
        REJECT,
        pin=PH + "certs/rsa-cert.pem",
        at=PHAOS_TIME,
        sha1=True,
    ),
    row(
        "phaos-bad-sig",
        PH + "signature-rsa-enveloped-bad-sig.xml",
        "xml",
        REJECT,
        pin=PH + "certs/rsa-cert.pem",
        at=PHAOS_TIME,
        sha1=True,
    ),
    row(
        "phaos-bad-retrieval-method",
        PH + "signature-rsa-detached-xslt-transform-bad-retrieval-method.xml",
        "xml",
        REJECT,
        roots=(PH + "certs/rsa-ca-cert.pem",),
        at=PHAOS_TIME,
        sha1=True,
    ),
    row(
        "phaos-hmac-sha1-enveloped",
        PH + "signature-hmac-sha1-exclusive-c14n-enveloped.xml",
        "xml",
        VALID,
        hmac=b"test",
        sha1=True,
    ),
    *(
        row(
            f"phaos-hmac-sha1-40-{n}",
            PH + f"signature-hmac-sha1-40-{n}-detached.xml",
            "xml",
            REJECT,
            hmac=b"test",
            sha1=True,
        )
        for n in ("c14n-comments", "exclusive-c14n-comments")
    ),
    *(
        row(f"aleksey-enveloped-{i}", AE + f"enveloped-sha256-rsa-sha256-test-{i}.xml", "xml", VALID, pin="embedded")
        for i in range(1, 9)
    ),
    row("aleksey-enveloped-keyinfo-only", AE + "enveloped-sha256-rsa-sha256-test-1.xml", "xml", VALID),
    row("aleksey-invalid-enveloped-transform", AE + "invalid_enveloped_transform.xml", "xml", REJECT, pin="embedded"),
    *(
        row(f"tr2012-{c}_{h}", TR + f"signature-enveloping-{c}_{h}.xml", "xml", VALID, sha1=h == "sha1")
        for c in ("p256", "p384", "p521")
        for h in ("sha1", "sha224", "sha256", "sha384", "sha512")
    ),
    *(
        row(f"tr2012-{n}", TR + f"signature-enveloping-{n}.xml", "xml", VALID, sha1=True)
        for n in (
            "rsa-sha224",
            "rsa-sha256",
            "rsa_sha384",
            "rsa_sha512",
            "sha224-rsa_sha256",
            "sha256-rsa-sha256",
            "sha384-rsa_sha256",
            "sha512-rsa_sha256",
            "derencoded-rsa",
            "derencoded-ec",
        )
    ),
    *(
        row(f"tr2012-hmac-{h}", TR + f"signature-enveloping-hmac-{h}.xml", "xml", VALID, hmac=b"testkey", sha1=True)
        for h in ("sha224", "sha256", "sha384", "sha512")
    ),
    row(
        "tr2012-hmac-sha1-truncated160",
        TR + "signature-enveloping-hmac-sha1-truncated160.xml",
        "xml",
        VALID,
        hmac=b"testkey",
        sha1=True,
    ),
    row(
        "tr2012-x509digest",
        TR + "signature-enveloping-x509digest-rsa.xml",
        "xml",
        VALID,
        pin=TR + "rsa-cert.der",
        at=PHAOS_TIME,
    ),
    row(
        "tr2012-keyinforeference",
        TR + "signature-enveloping-keyinforeference-rsa.xml",
        "xml",
        VALID,
        pin=TR + "rsa-cert.der",
        at=PHAOS_TIME,
    ),
    row(
        "wss-valid",
        WS + "test/unit/client/files/valid wss resp.xml",
        "xml",
        VALID,
        pin=WS + "examples/server_public.pem",
        refs=2,
        sha1=True,
    ),
    row(
        "wss-changed-content",
        WS + "test/unit/client/files/invalid wss resp - changed content.xml",
        "xml",
        REJECT,
        pin=WS + "examples/server_public.pem",
        refs=2,
        sha1=True,
        sub=SubIndication.HASH_FAILURE,
    ),
    *(
        row(
            f"pyxmlsecurity-{n}",
            IOP + f"pyXMLSecurity/{n}.xml",
            "xml",
            VALID,
            pin=IOP + "pyXMLSecurity/test.pem",
            at=SAML_TIME,
            sha1=True,
        )
        for n in ("SAML_assertion1", "SAML_assertion_sha256", "edugain")
    ),
    row(
        "xml-crypto-inclusivenamespaces",
        IOP + "xml-crypto/signature_with_inclusivenamespaces.xml",
        "xml",
        VALID,
        pin=IOP + "xml-crypto/signature_with_inclusivenamespaces.pem",
        sha1=True,
    ),
    row(
        "xml-crypto-windows-store",
        IOP + "xml-crypto/windows_store_signature.xml",
        "xml",
        VALID,
        pin=IOP + "xml-crypto/windows_store_certificate.pem",
        sha1=True,
    ),
    row(
        "xml-crypto-wsfederation-2015",
        IOP + "xml-crypto/wsfederation_metadata.xml",
        "xml",
        VALID,
        pin=IOP + "xml-crypto/wsfederation_metadata.pem",
        at=utc(2015, 6, 1),
        sha1=True,
    ),
    row(
        "xml-crypto-wsfederation-expired-now",
        IOP + "xml-crypto/wsfederation_metadata.xml",
        "xml",
        REJECT,
        pin=IOP + "xml-crypto/wsfederation_metadata.pem",
        sha1=True,
        sub=SubIndication.EXPIRED,
    ),
    # -- 1b. xmlsec -----------------------------------------------------------------------------------
    *(
        row(f"xmlsec-{n}", XS + f"{n}.xml", "xml", VALID, roots=(XK + "cacert.pem",))
        for n in ("enveloping-sha256-rsa-sha256", "enveloping-sha256-ecdsa-sha256")
    ),
    row(
        "xmlsec-expired-cert-now",
        XS + "enveloping-expired-cert.xml",
        "xml",
        REJECT,
        roots=(XK + "cacert.pem",),
        sha1=True,
        sub=SubIndication.EXPIRED,
    ),
    row(
        "xmlsec-expired-cert-2026-03-15",
        XS + "enveloping-expired-cert.xml",
        "xml",
        VALID,
        roots=(XK + "cacert.pem",),
        at=utc(2026, 3, 15),
        sha1=True,
    ),
    row(
        "xmlsec-same-subj-cert1",
        XS + "enveloped-x509-same-subj-cert.xml",
        "xml",
        VALID,
        roots=(XK + "same-subj-cert1.pem",),
    ),
    row(
        "xmlsec-same-subj-cert2",
        XS + "enveloped-x509-same-subj-cert.xml",
        "xml",
        REJECT,
        roots=(XK + "same-subj-cert2.pem",),
    ),
    row(
        "xmlsec-same-subj-pin-cert2",
        XS + "enveloped-x509-same-subj-cert.xml",
        "xml",
        REJECT,
        pin=XK + "same-subj-cert2.pem",
        sub=SubIndication.SIG_CRYPTO_FAILURE,
    ),
    row(
        "xmlsec-missing-cert-with-intermediate",
        XS + "enveloped-x509-missing-cert.xml",
        "xml",
        VALID,
        roots=(XK + "cacert.pem",),
        intermediates=(XK + "ca2cert.pem",),
    ),
    row(
        "xmlsec-missing-cert-no-intermediate",
        XS + "enveloped-x509-missing-cert.xml",
        "xml",
        REJECT,
        roots=(XK + "cacert.pem",),
    ),
    row(
        "xmlsec-missing-cert-wrong-anchor",
        XS + "enveloped-x509-missing-cert.xml",
        "xml",
        REJECT,
        roots=(XK + "rsa/rsa-4096-cert.pem",),
    ),
    row(
        "xmlsec-rsa-sha1",
        XS + "enveloped-sha1-rsa-sha1.xml",
        "xml",
        VALID,
        key=XK + "rsa/rsa-4096-pubkey.pem",
        sha1=True,
    ),
    row("xmlsec-rsa-pss", XS + "enveloped-sha256-rsa-pss-sha256.xml", "xml", VALID, key=XK + "rsa/rsa-4096-pubkey.pem"),
    row(
        "xmlsec-ecdsa-p256",
        XS + "enveloped-sha256-ecdsa-sha256.xml",
        "xml",
        VALID,
        key=XK + "ec/ec-prime256v1-pubkey.pem",
    ),
    row(  # README names ec-prime384v1; testDSig.sh shows it is signed with ec-prime521v1, not in the corpus
        "xmlsec-ecdsa-sha384-p521-signer-wrong-key",
        XS + "enveloped-sha384-ecdsa-sha384.xml",
        "xml",
        REJECT,
        key=XK + "ec/ec-prime384v1-pubkey.pem",
        sub=SubIndication.SIG_CRYPTO_FAILURE,
    ),
    row(
        "xmlsec-ecdsa-wrong-key",
        XS + "enveloped-sha256-ecdsa-sha256.xml",
        "xml",
        REJECT,
        key=XK + "ec/ec-prime384v1-pubkey.pem",
    ),
    row(
        "xmlsec-eddsa-ed25519",
        XS + "enveloped-sha256-eddsa-ed25519.xml",
        "xml",
        VALID,
        key=XK + "eddsa/eddsa-ed25519-pubkey.pem",
        xfail="signxml 5.2 does not know the xmldsig-more 2021 EdDSA URIs",
    ),
    row(
        "xmlsec-mldsa44",
        XS + "enveloped-sha512-mldsa44.xml",
        "xml",
        VALID,
        key=XK + "ml-dsa/ml-dsa-44-pubkey.pem",
        xfail="ML-DSA is not supported by signxml 5.2",
    ),
    row("xmlsec-hmac-sha256", XS + "enveloping-sha256-hmac-sha256.xml", "xml", VALID, hmac=XK + "hmackey.bin"),
    row(  # our policy: only full-length HMACs (XMLDSig 1.1 would allow >= 128 bits here; 64 is below both)
        "xmlsec-hmac-sha256-64",
        XS + "enveloping-sha256-hmac-sha256-64.xml",
        "xml",
        REJECT,
        hmac=XK + "hmackey.bin",
        sub=SubIndication.SIG_CONSTRAINTS_FAILURE,
    ),
    # -- 1c. Santuario ----------------------------------------------------------------------------------
    *(
        row(
            f"santuario-hmac-trunclen-{n}",
            SD + f"signature-enveloping-hmac-sha1-trunclen-{n}-attack.xml",
            "xml",
            REJECT,
            hmac=b"secret",
            sha1=True,
            sub=SubIndication.SIG_CONSTRAINTS_FAILURE,
        )
        for n in (0, 8)
    ),
    row(
        "santuario-enveloping-saml11",
        SD + "envelopingSignature.xml",
        "xml",
        VALID,
        sha1=True,
        xfail="512-bit DSA key: cryptography refuses to load DSA keys below 1024 bits",
    ),
    row("santuario-invalid-signature", SD + "invalid-signature.xml", "xml", REJECT, sha1=True),
    *(
        row(
            f"santuario-invalid-{n}",
            SA + f"javax/xml/crypto/dsig/eddsa/envelopingInvalidSignature{n}.xml",
            "xml",
            REJECT,
        )
        for n in ("Ed25519", "Ed448")
    ),
    row(  # refused for its DOCTYPE before the Manifest question arises
        "santuario-manifest-wrapping",
        SA + "at/iaik/ixsil/coreFeatures/signatures/manifestSignatureWrapping.xml",
        "xml",
        REJECT,
        sha1=True,
    ),
    row(
        "santuario-merlin16-bad-signature",
        SA + "ie/baltimore/merlin-examples/merlin-xmldsig-sixteen/bad-signature.xml",
        "xml",
        REJECT,
        sha1=True,
    ),
    row(
        "santuario-signature-good",
        SA + "org/apache/xml/security/temp/signature/signature-good.xml",
        "xml",
        VALID,
        pin="embedded",
        at=utc(2002, 6, 1),
        sha1=True,
    ),
    *(
        row(
            f"santuario-bad-{n}-algo",
            SA + f"org/apache/xml/security/temp/signature/signature-bad-{n}-algo.xml",
            "xml",
            REJECT,
            pin="embedded",
            at=utc(2002, 6, 1),
            sha1=True,
            sub=SubIndication.SIG_CONSTRAINTS_FAILURE,
        )
        for n in ("c14n", "sig", "transform")
    ),
    # -- 1d. XAdES (signer certificate pinned, verified at the signing time) ----------------------------
    *(
        row(f"xades-{n}", XA + f"{n}.xml", "xml", VALID, pin="embedded", at="signing-time", refs=None, sha1=True)
        for n in (
            "dss-signed",
            "xades-lta-valid",
            "X_AT_SIT_1",
            "TEST_S1a_C1a_InTL_VALID",
            "Signature-X-CZ_SEF-4",
            "Signature-X-CZ_SEF-5",
            "Signature-X-HU_POL-3",
            "Signature-X-SK_DIT-1",
            "xades-ecc-brainpool",
            "xades-extended-xl",
            "xades-x-level",
            "document.signed.bes.ptcc",
            "dk_tl-sn21",
            "11068_signed",
            "factura_ejemplo2_32v1",
        )
    ),
    *(
        row(f"xades-{n}", XA + f"{n}.xml", "xml", REJECT, pin="embedded", at="signing-time", refs=None, sha1=True)
        for n in (
            "dss-signed-altered-signedPropsRemoved",
            "nonconformant-dss-signed-altered-refRemoved",
            "xades-unsupported-signature-algorithm",
        )
    ),
    *(
        row(
            f"xades-{n}",
            XA + f"{n}.xml",
            "xml",
            REJECT,
            pin="embedded",
            at="signing-time",
            refs=None,
            sub=SubIndication.HASH_FAILURE,
        )
        for n in ("xades-wrong-sign-cert-digest", "xades-sign-cert-v2-wrong-digest")
    ),
    *(
        row(
            f"xades-{n}",
            XA + f"{n}.xml",
            "xml",
            FLAG,
            pin="embedded",
            at="signing-time",
            refs=None,
            xfail="XAdES counter-signatures (unsigned properties) are not verified; the report is the main signature's",
        )
        for n in ("xades-fake-counter-signature", "xades-counter-signature-injected")
    ),
    *(
        row(f"eu-tl-{n}", PD + f"tl/{n}.xml", "xml", VALID, pin="embedded", at="signing-time", refs=None)
        for n in ("eu-lotl", "tsl-ee")
    ),
    # -- 1e. SAML signature wrapping: the signature is valid, only the genuine assertion may come back ---
    *(
        row(
            f"xsw-{n}",
            SW + f"signed-xsw-{n}.xml",
            "xml",
            VALID,
            pin="pysaml2/tests/test.pem",
            at=SAML_TIME,
            sha1=True,
            not_signed=("attack",),
        )
        for n in (
            "assertion-wrapper",
            "assertion-extensions",
            "assertion-assertion",
            "assertion-in-assertion-first-sig",
            "response-in-response-first-sig",
        )
    ),
    # -- 4. XXE / entity expansion / bombs ------------------------------------------------------------
    *(
        row(f"{d.split('/')[0]}-{n}", d + f"{n}.xml", "xml", PARSE_REJECT)
        for d in (DX, "signxml/test/defusedxml-test-data/", PD + "xml/bad-xml/")
        for n in ("xmlbomb", "xmlbomb2", "quadratic", "cyclic", "external", "external_file", "dtd")
    ),
    row("defusedxml-dtd_element", DX + "dtd_element.xml", "xml", PARSE_REJECT),
    row("pyhanko-xmp-with-harmless-entity", PD + "xml/bad-xml/xmp-with-harmless-entity.xml", "xml", PARSE_REJECT),
    *(row(f"defusedxml-{n}-unsigned", DX + f"{n}.xml", "xml", REJECT) for n in ("simple", "simple-ns")),
    # -- 2a. pyHanko PDFs -------------------------------------------------------------------------------
    *(
        row(f"pdf-{n}", PP + f"{n}.pdf", "pdf", VALID, **TESTING_CA)
        for n in (
            "minimal-signed-twice-both-created",
            "minimal-signed-twice-second-created",
            "minimal-two-fields-signed-twice",
        )
    ),
    *(
        row(
            f"pdf-{n}",
            PP + f"{n}.pdf",
            "pdf",
            VALID,
            **TESTING_CA,
            intermediates=TESTING_CA_INTERM,
            at=LORD_TESTERINO_TIME,
        )
        for n in ("certified-with-indirect-refs-in-dir", "separate-annots-kids-indir", "sig-no-signed-attrs")
    ),
    *(
        row(f"pdf-{n}", PP + f"{n}.pdf", "pdf", VALID, pin="signer", field="Sig1", at=ALICE_TIME)
        for n in (
            "minimal-signed-twice-no-sig-type",
            "pades-lta-dss-indirect-arrs-test",
            "pades-with-old-style-signing-cert-attr",
            "sig-with-ski-sid",
            "ed448-shake256-nolen",
            "form-update-override-appearance-stream",
            "form-update-original-ap-type-wrong",
            "extensions-direct",
        )
    ),
    row(
        "pdf-ed448-disallowed-hash",
        PP + "ed448-disallowed-hash.pdf",
        "pdf",
        REJECT,
        pin="signer",
        field="Sig1",
        at=ALICE_TIME,
    ),
    row(
        "pdf-sig-with-econtent",
        PP + "pdf-sig-with-econtent.pdf",
        "pdf",
        REJECT,
        pin="signer",
        field="Sig1",
        at=ALICE_TIME,
        sub=SubIndication.FORMAT_FAILURE,
    ),
    *(
        row(
            f"pdf-{n}",
            PP + f"{n}.pdf",
            "pdf",
            FLAG,
            pin="signer",
            field="Sig1",
            at=ALICE_TIME,
            sub=SubIndication.MODIFIED_AFTER_SIGNING,
        )
        for n in (
            "form-update-override-appearance-stream-sneaky",
            "form-update-override-appearance-stream-ap-indirect-sneaky",
            "form-update-no-override-appearance-stream-ap-indirect-sneaky",
            "form-update-ap-indirect-sneaky-trailer",
            "extensions-indirect-not-all-paths",
        )
    ),
    *(
        row(f"pdf-coverage-{n}", PP + f"coverage-anomalies/{n}.pdf", "pdf", FLAG, **TESTING_CA)
        for n in ("tail-uncovered", "one-byterange", "signature-gap-too-big", "weird-byterange")
    ),
    row(
        "pdf-coverage-base",
        PP + "coverage-anomalies/base.pdf",
        "pdf",
        REJECT,
        **TESTING_CA,
        sub=SubIndication.FORMAT_FAILURE,
    ),
    row("pdf-minimal-unsigned", PP + "minimal.pdf", "pdf", UNSIGNED, **TESTING_CA),
    # -- 3a. RFC 3161 timestamp responses (message b"hello"); ``chain``: root last, the rest supplied too ----
    *(
        row(f"tsr-sigstage-{h}", TS + f"sigstage/response-{h}.tsr", "tsr", VALID, chain=SIGSTAGE, tsa="sigstore-tsa")
        for h in ("sha256", "sha384", "sha512")
    ),
    row(
        "tsr-sigstage-sha256-root-only",
        TS + "sigstage/response-sha256.tsr",
        "tsr",
        VALID,
        chain=SIGSTAGE,
        root_only=True,
    ),
    row(
        "tsr-sigstage-no-embedded-cert-supplied",
        TS + "sigstage/response-no-embedded-cert.tsr",
        "tsr",
        VALID,
        chain=SIGSTAGE,
        tsa="sigstore-tsa",
    ),
    row(
        "tsr-sigstage-no-embedded-cert-not-supplied",
        TS + "sigstage/response-no-embedded-cert.tsr",
        "tsr",
        REJECT,
        chain=SIGSTAGE,
        root_only=True,
    ),
    row(
        "tsr-sigstage-invalid-signature", TS + "sigstage/response-invalid-signature.tsr", "tsr", REJECT, chain=SIGSTAGE
    ),
    row(
        "tsr-sigstage-wrong-message",
        TS + "sigstage/response-sha256.tsr",
        "tsr",
        REJECT,
        chain=SIGSTAGE,
        message=b"goodbye",
    ),
    row("tsr-test-tsa", TS + "test_tsa/response.tsr", "tsr", VALID, chain=TEST_TSA, tsa="Test TSA Timestamping"),
    row("tsr-test-tsa-wrong-message", TS + "test_tsa/response.tsr", "tsr", REJECT, chain=TEST_TSA, message=b"hello\n"),
    row("tsr-test-tsa-no-intermediate", TS + "test_tsa/response.tsr", "tsr", REJECT, chain=TEST_TSA, root_only=True),
    row(  # issued by another instance of the test TSA, whose intermediate is not in ts_chain.pem
        "tsr-test-tsa-other-instance",
        TS + "test_tsa/other_response.tsr",
        "tsr",
        REJECT,
        chain=TEST_TSA,
    ),
    row(  # the leaf is the one SignerInfo.sid names, not the injected "Spoofed TSA" first in the bag
        "tsr-injected-certs-follows-sid",
        TS + "test_tsa/response-injected-certs.tsr",
        "tsr",
        VALID,
        chain=TEST_TSA,
        tsa="Test TSA Timestamping",
    ),
    row("tsr-injected-certs-pin-spoofed", TS + "test_tsa/response-injected-certs.tsr", "tsr", REJECT, pin="spoofed"),
    row(
        "tsr-identrust",
        TS + "identrust/issue-104.tsr",
        "tsr",
        VALID,
        chain=TS + "identrust/ts_chain.pem",
        tsa="TrustID",
    ),
    row(
        "tsr-sigstore-mock-expired-at-gentime",
        TS + "sigstore.mock/response-expired.tsr",
        "tsr",
        VALID,
        chain=TS + "sigstore.mock/ts_chain.pem",
        message=TS + "sigstore.mock/payload",
        tsa="sigstore.mock",
    ),
]


@pytest.mark.parametrize("case", ROWS)
def test_corpus(corpus: Path, case: Row) -> None:
    {"xml": _check_xml, "pdf": _check_pdf, "tsr": _check_tsr}[case.kind](corpus, case)


# -- XML ------------------------------------------------------------------------------------------------
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
ID_NAMES = ("ID", "Id", "AssertionID")


def _check_xml(corpus: Path, case: Row) -> None:
    data = (corpus / case.path).read_bytes()
    pinned = None
    if case.pin == "embedded":
        pinned = _embedded_certificate(data)
    elif case.pin is not None:
        pinned = load_certificates(corpus / case.pin)[0]
    hmac = (corpus / case.hmac).read_bytes() if isinstance(case.hmac, str) else case.hmac
    started = time.perf_counter()
    result = verify_xml_signature(
        data,
        trust=_trust(corpus, case.roots, case.intermediates) if case.roots else None,
        pinned_certificate=pinned,
        public_key_pem=(corpus / case.key).read_bytes() if case.key else None,
        hmac_key=hmac,
        at=_signing_time(data) if case.at == "signing-time" else case.at,
        expect_references=case.refs,
        allow_sha1=case.sha1,
    )
    elapsed = time.perf_counter() - started
    report = result.report
    anchored = any(a is not None for a in (pinned, case.key, hmac)) or bool(case.roots)

    # only what was signed is handed back: detached copies rebuilt from the signed bytes
    assert all(e.getparent() is None for e in result.signed_elements)
    for fragment in case.not_signed:
        ids = [
            v for e in result.signed_elements for el in e.iter() for k, v in el.attrib.items() if _local(k) in ID_NAMES
        ]
        assert not any(fragment in i for i in ids), ids
        assert not any(fragment in part for part in report.signed_parts), report.signed_parts

    if case.expect is VALID:
        if anchored:
            assert report.indication is Indication.TOTAL_PASSED, report.reasons
        else:  # the key the document carries verifies it, but whose key it is stays unknown
            assert report.indication is Indication.INDETERMINATE, report.reasons
            assert report.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND, report.reasons
        assert report.signed_parts
    elif case.expect in (REJECT, FLAG):
        assert report.indication is not Indication.TOTAL_PASSED, report
    elif case.expect is PARSE_REJECT:
        assert report.indication is Indication.TOTAL_FAILED
        assert report.sub_indication is SubIndication.FORMAT_FAILURE, report.reasons
        assert not result.signed_elements
        assert elapsed < 1.0
    if case.sub is not None:
        assert report.sub_indication is case.sub, report.reasons
    if report.indication is Indication.TOTAL_PASSED and case.not_signed:
        assert result.signed_elements


def _embedded_certificate(data: bytes) -> x509.Certificate:
    element = etree.fromstring(data).find(f".//{{{DS}}}X509Certificate")
    assert element is not None
    assert element.text
    return x509.load_der_x509_certificate(base64.b64decode("".join(element.text.split())))


def _signing_time(data: bytes) -> datetime:
    text = etree.fromstring(data).findtext(f".//{{{XADES}}}SigningTime")
    assert text, "no xades:SigningTime"
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _local(name: str | bytes) -> str:
    return etree.QName(name).localname


def _trust(corpus: Path, roots: tuple[str, ...], intermediates: tuple[str, ...]) -> TrustStore:
    return TrustStore.from_files([corpus / p for p in roots], [corpus / p for p in intermediates], allow_fetching=False)


# -- PDF ------------------------------------------------------------------------------------------------
def _check_pdf(corpus: Path, case: Row) -> None:
    data = (corpus / case.path).read_bytes()
    if case.pin == "signer":
        trust = TrustStore(roots=(_pdf_signer(data, case.field),), allow_fetching=False)
    else:
        trust = _trust(corpus, case.roots, case.intermediates)
    assert case.at != "signing-time"
    reports = verify_pdf(Path(case.path).name, data, trust, at=case.at)
    if case.expect is UNSIGNED:
        assert reports == []
        return
    checked = [r for r in reports if case.field is None or r.id.endswith(f"#{case.field}")]
    assert checked, [r.id for r in reports]
    for report in checked:
        if case.expect is VALID:
            assert report.indication is Indication.TOTAL_PASSED, (report.id, report.reasons)
            assert all(r.allowed for r in report.revisions_after), report.revisions_after
        else:
            assert report.indication is not Indication.TOTAL_PASSED, report.id
        if case.sub is not None:
            assert report.sub_indication is case.sub, (report.id, report.reasons)


def _pdf_signer(data: bytes, field: str | None) -> x509.Certificate:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    sig = next(s for s in reader.embedded_signatures if field is None or s.field_name == field)
    return x509.load_der_x509_certificate(sig.signer_cert.dump())


# -- RFC 3161 -------------------------------------------------------------------------------------------
def _check_tsr(corpus: Path, case: Row) -> None:
    response = tsp.TimeStampResp.load((corpus / case.path).read_bytes())
    assert response["status"]["status"].native == "granted"
    token = response["time_stamp_token"]
    if case.pin == "spoofed":
        bag = [c.chosen for c in token["content"]["certificates"]]
        spoofed = [x509.load_der_x509_certificate(c.dump()) for c in bag if "Spoofed" in c.subject.human_friendly]
        assert spoofed
        trust = TrustStore(roots=tuple(spoofed), allow_fetching=False)
    else:
        chain = load_certificates(corpus / case.chain)
        known = () if case.root_only else tuple(chain[:-1])
        trust = TrustStore(roots=(chain[-1],), intermediates=known, allow_fetching=False)
    info = token["content"]["encap_content_info"]["content"].parsed
    algorithm = info["message_imprint"]["hash_algorithm"]["algorithm"].native
    message = (corpus / case.message).read_bytes() if isinstance(case.message, str) else case.message
    # Archived tokens whose TSA certificates have expired since: checked as of their own time, as `--at` would (by
    # default a TSA's certificate is validated now, ETSI EN 319 102-1).
    stamp = verify_timestamp_token(
        token.dump(),
        hashlib.new(algorithm, message).digest(),
        trust,
        digest_algorithm=algorithm,
        at=token_time(token.dump()),
    )
    if case.expect is VALID:
        assert stamp.valid, stamp.problem
        assert stamp.imprint_matches
        assert case.tsa in stamp.tsa
    else:
        assert not stamp.valid
