"""HTTP responders of the development PKI: OCSP (RFC 6960), CRLs, CA certificates, RFC 3161 timestamps.

A WSGI application (served by werkzeug in a background thread by :func:`signing.devpki.serve_dev_pki`).
It answers from a :class:`ResponderState` that a callback supplies on every request, so the PKI can be
created after the server has bound its port, and revocations written later are answered at once.

The OCSP and timestamp responses themselves are built by certomancer's ``SimpleOCSPResponder`` and
``TimeStamper`` (the building blocks pyHanko's own test-suite validates against); the revocation data they
answer from is ours.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from asn1crypto import cms, core, ocsp, tsp
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from certomancer.services import (
    RevocationInfoInterface,
    SimpleOCSPResponder,
    TimeStamper,
    choose_signed_digest,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from signing._private.devpki_issue import DEV_POLICY_OID, PrivateKey, Revocation, build_crl

log = logging.getLogger("signing.devpki")

MAX_REQUEST = 64 * 1024  # OCSP and timestamp requests are a few hundred bytes
OCSP_VALIDITY = dt.timedelta(days=1)
CRL_VALIDITY = dt.timedelta(days=1)
BACKDATE = dt.timedelta(minutes=1)  # thisUpdate slightly in the past: a validator's clock may lag ours
TSA_DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}

_REASONS = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "key_compromise",
    x509.ReasonFlags.ca_compromise: "ca_compromise",
    x509.ReasonFlags.affiliation_changed: "affiliation_changed",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessation_of_operation",
    x509.ReasonFlags.certificate_hold: "certificate_hold",
    x509.ReasonFlags.privilege_withdrawn: "privilege_withdrawn",
    x509.ReasonFlags.aa_compromise: "aa_compromise",
}


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def asn1_key(key: PrivateKey) -> asn1_keys.PrivateKeyInfo:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return asn1_keys.PrivateKeyInfo.load(der)


@dataclass(frozen=True)
class CrlSource:
    """A CA whose CRL is served: its certificate, key and revoked certificates."""

    issuer: x509.Certificate
    key: PrivateKey
    revoked: tuple[Revocation, ...]


@dataclass
class ResponderState:
    """What the responders answer from: one version of the PKI on disk."""

    ocsp_url: str
    tsa_url: str
    crls: Mapping[str, CrlSource]  # URL → source
    certificates: Mapping[str, x509.Certificate]  # URL → CA certificate (AIA caIssuers)
    ocsp_issuer: x509.Certificate  # the CA the OCSP responder answers for
    ocsp_known: frozenset[int]  # serials that CA issued
    ocsp_revoked: Mapping[int, Revocation]
    responder_cert: x509.Certificate
    responder_key: PrivateKey
    tsa_cert: x509.Certificate
    tsa_key: PrivateKey
    tsa_chain: tuple[x509.Certificate, ...]
    _asn1: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def converted(self) -> dict[str, Any]:
        """asn1crypto forms of the keys and certificates certomancer signs with (converted once)."""
        with self._lock:
            if not self._asn1:
                self._asn1.update(
                    issuer=asn1_cert(self.ocsp_issuer),
                    responder_cert=asn1_cert(self.responder_cert),
                    responder_key=asn1_key(self.responder_key),
                    tsa_cert=asn1_cert(self.tsa_cert),
                    tsa_key=asn1_key(self.tsa_key),
                    tsa_chain=[asn1_cert(c) for c in self.tsa_chain],
                )
            return dict(self._asn1)


def dated(now: dt.datetime, revocations: Iterable[Revocation]) -> dt.datetime:
    """thisUpdate of a response at ``now``: a minute back (a validator's clock may lag ours), but never
    before a revocation it reports, so that a certificate revoked a moment ago is reported revoked."""
    return max([now - BACKDATE, *(r.revoked_at for r in revocations if r.revoked_at <= now)])


class _Revocations(RevocationInfoInterface):
    def __init__(self, state: ResponderState, issuer: asn1_x509.Certificate) -> None:
        self._state = state
        self._issuer = issuer

    def get_issuer_cert(self) -> asn1_x509.Certificate:
        return self._issuer

    def check_revocation_status(self, cid: ocsp.CertId, at_time: dt.datetime) -> tuple[ocsp.CertStatus, list[Any]]:
        serial = cid["serial_number"].native
        revoked = self._state.ocsp_revoked.get(serial)
        if revoked is not None and revoked.revoked_at <= at_time:
            info = ocsp.RevokedInfo(
                {"revocation_time": revoked.revoked_at, "revocation_reason": _REASONS[revoked.reason]}
            )
            return ocsp.CertStatus(name="revoked", value=info), []
        if serial in self._state.ocsp_known:
            return ocsp.CertStatus(name="good", value=core.Null()), []
        return ocsp.CertStatus(name="unknown", value=core.Null()), []


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def ocsp_response(state: ResponderState, request_der: bytes) -> bytes:
    try:
        request = ocsp.OCSPRequest.load(request_der)
        request.native  # noqa: B018  (parse everything now, or fail as malformed)
    except (ValueError, TypeError, KeyError):
        return SimpleOCSPResponder.build_error_response("malformed_request").dump()  # type: ignore[no-any-return]
    asn1 = state.converted()
    asked = (
        state.ocsp_revoked.get(r["req_cert"]["serial_number"].native) for r in request["tbs_request"]["request_list"]
    )
    responder = SimpleOCSPResponder(
        responder_cert=asn1["responder_cert"],
        responder_key=asn1["responder_key"],
        signature_algo=choose_signed_digest("sha256", asn1["responder_cert"].public_key),
        at_time=dated(_now(), (r for r in asked if r is not None)),
        revinfo_interface=_Revocations(state, asn1["issuer"]),
        validity=OCSP_VALIDITY,
    )
    return responder.build_ocsp_response(request).dump()  # type: ignore[no-any-return]


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp: asn1crypto's makes the token mandatory, so it cannot express a refusal."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _tsa_rejection(failure: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo(
        {"status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({failure})}
    )
    return _TimeStampResp({"status": status}).dump()  # type: ignore[no-any-return]


def timestamp_response(state: ResponderState, request_der: bytes) -> bytes:
    try:
        request = tsp.TimeStampReq.load(request_der)
        request.native  # noqa: B018
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        digest = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError):
        return _tsa_rejection("bad_data_format", "not a TimeStampReq")
    if algorithm not in TSA_DIGESTS:
        return _tsa_rejection("bad_alg", f"message imprints with {algorithm} are not accepted")
    if len(digest) != TSA_DIGESTS[algorithm]:
        return _tsa_rejection("bad_data_format", f"a {algorithm} imprint has {TSA_DIGESTS[algorithm]} bytes")
    policy = request["req_policy"].native
    if policy is not None and policy != DEV_POLICY_OID.dotted_string:
        return _tsa_rejection("unaccepted_policy", f"this TSA only issues under policy {DEV_POLICY_OID.dotted_string}")
    asn1 = state.converted()
    stamper = TimeStamper(
        tsa_cert=asn1["tsa_cert"],
        tsa_key=asn1["tsa_key"],
        certs_to_embed=asn1["tsa_chain"],
        policy=tsp.ObjectIdentifier(DEV_POLICY_OID.dotted_string),
        md_algorithm="sha256",
    )
    return stamper.request_tsa_response(request).dump()  # type: ignore[no-any-return]


def crl_response(source: CrlSource) -> bytes:
    now = _now()
    revoked = [r for r in source.revoked if r.revoked_at <= now]
    crl = build_crl(
        source.issuer,
        source.key,
        revoked,
        this_update=dated(now, revoked),
        next_update=now + CRL_VALIDITY,
        number=int(dt.datetime.now(dt.UTC).timestamp() * 1000),  # grows with every issue, as RFC 5280 wants
    )
    return crl.public_bytes(serialization.Encoding.DER)


class DevPkiApp:
    """The WSGI application. ``load_state`` returns the current state, or None while there is no PKI."""

    def __init__(self, load_state: Callable[[], ResponderState | None], describe: Callable[[], str]) -> None:
        self._load_state = load_state
        self._describe = describe

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_REQUEST
        try:
            response = self.dispatch(request)
        except HTTPException as e:  # e.g. a request larger than MAX_REQUEST
            return e(environ, start_response)
        except Exception:
            log.exception("dev PKI responder failed on %s %s", request.method, request.path)
            response = _text(500, "internal error (see the server log)")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        state = self._load_state()
        if state is None:
            return _text(503, "no development PKI here yet: run `lienthong pki init` for this directory")
        path = request.path
        ocsp_path = urlsplit(state.ocsp_url).path
        if path == "/" and request.method == "GET":
            return _text(200, self._describe())
        if path == ocsp_path:
            if request.method != "POST":
                return _text(405, "OCSP over POST here; GET is served under this path + /<base64 request>")
            if request.mimetype != "application/ocsp-request":
                return _text(415, "an OCSP request must be sent as application/ocsp-request")
            return _der(ocsp_response(state, request.get_data()), "application/ocsp-response")
        if path.startswith(ocsp_path + "/") and request.method == "GET":
            encoded = path[len(ocsp_path) + 1 :]
            try:
                der = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return _text(400, "the path after the OCSP URL must be a base64 OCSP request")
            return _der(ocsp_response(state, der), "application/ocsp-response")
        if path == urlsplit(state.tsa_url).path:
            if request.method != "POST":
                return _text(405, "timestamp requests are sent with POST")
            if request.mimetype != "application/timestamp-query":
                return _text(415, "a timestamp request must be sent as application/timestamp-query")
            return _der(timestamp_response(state, request.get_data()), "application/timestamp-reply")
        if request.method == "GET":
            for url, source in state.crls.items():
                if path == urlsplit(url).path:
                    return _der(crl_response(source), "application/pkix-crl")
            for url, cert in state.certificates.items():
                if path == urlsplit(url).path:
                    return _der(cert.public_bytes(serialization.Encoding.DER), "application/pkix-cert")
        return _text(404, f"nothing at {path}")


def _der(data: bytes, mimetype: str) -> Response:
    return Response(data, status=200, mimetype=mimetype, headers={"Cache-Control": "no-store"})


def _text(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the ``signing.devpki`` logger at DEBUG, not to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s - " + message, self.address_string(), *args)


def bind(host: str, port: int, app: DevPkiApp) -> BaseWSGIServer:
    return make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
