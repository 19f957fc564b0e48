"""The development PKI: certificates for demos and tests, with real OCSP, CRL and timestamp responders.

**Not for production.** Every certificate chains to a root whose subject says so
(``CN=Liên thông DEV Root CA — NOT FOR PRODUCTION``, ``O=Liên thông development PKI — NOT FOR PRODUCTION``)
and carries the policy :data:`DEV_POLICY_OID` with the same notice; timestamps are issued under that
policy too. Production trust roots are configuration (Ban Cơ yếu Chính phủ, licensed public CAs).

``create_dev_pki(DIR, [(code, name), …])`` writes, under ``DIR``::

    root-ca.{pem,key}            self-signed root, valid 5 years back and 20 ahead
    issuing-ca.{pem,key}         issues every end-entity certificate below; chain.pem holds it alone
    crl.{pem,der}                the issuing CA's CRL (lists organs/<first>/revoked)
    root-crl.{pem,der}           the root's CRL (empty unless the issuing CA is revoked)
    ocsp-responder.{pem,key}     delegated OCSP signer (id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
    tsa.{pem,key}                RFC 3161 timestamp authority (id-kp-timeStamping, critical)
    organs/<code>/organisation.{pem,key,p12}   the agency's seal: O = CN = agency name
    organs/<code>/signer.{pem,key,p12}         a person of the agency: CN "Nguyễn Văn A (<agency>)"
    organs/<first code>/expired.{pem,key,p12}  expired a month ago
    organs/<first code>/revoked.{pem,key,p12}  revoked (keyCompromise) in the CRL and by OCSP
    untrusted/root-ca.pem, untrusted/signer.{pem,key,p12}   another root, claiming the first agency
    passphrase.txt               mode 0600: unlocks every .key (encrypted PKCS#8) and .p12
    pki.json                     what is where: paths, subjects, serials, validity, URLs (no secret)

**Organisation code convention.** A Liên thông agency certificate carries the agency's organisation code
(mã định danh, e.g. ``000.01.41.H41``) in its subject as the ``UID`` attribute (userId,
OID 0.9.2342.19200300.100.1.1), next to ``O`` = the agency name. Verifiers read the sender's code from
there (:class:`signing.report.CertificateInfo`) and compare it with the envelope's ``From/OrganId``.

Every end-entity certificate names ``BASE_URL/ocsp`` (AIA OCSP), ``BASE_URL/certs/issuing-ca.cer`` (AIA
caIssuers) and ``BASE_URL/crl/issuing-ca.crl`` (CRL distribution point); the issuing CA names
``BASE_URL/crl/root-ca.crl``. :func:`serve_dev_pki` answers at those URLs (OCSP per RFC 6960 over POST and
GET, fresh CRLs, RFC 3161 timestamps at ``BASE_URL/tsa``), so pyHanko and pyhanko-certvalidator fetch
revocation data exactly as they would from a real CA. The server reads ``DIR`` on each request (reloading
when ``pki.json`` changes), so it can bind first and the PKI can be created afterwards with its URL::

    with serve_dev_pki(directory) as responders:          # binds a free port
        pki = create_dev_pki(directory, organs, base_url=responders.url)
        ...                                                 # certificates point at the running server

:meth:`DevPki.revoke` revokes another certificate later (the responders answer with it at once).

Certificates and CRLs are issued here with ``cryptography``, once, and the files on disk are the truth
(certomancer would re-issue them from a config on every load, and ECDSA signatures differ each time).
OCSP responses and timestamp tokens are built with certomancer's ``SimpleOCSPResponder`` and
``TimeStamper``, answering from ``pki.json``, behind our own small werkzeug application.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, get_args
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from werkzeug.serving import BaseWSGIServer

from schemas import OrganCode, OrganCodeError
from signing._private import devpki_http as http
from signing._private import devpki_issue as issue
from signing._private.devpki_issue import DEV_POLICY_OID, KeyAlgorithm, PrivateKey, Revocation, Urls
from signing.errors import DevPkiError, KeyLoadError
from signing.keys import Passphrase, SoftwareKey, load_pkcs12
from signing.trust import RevocationMode, TrustStore

__all__ = [
    "DEFAULT_BASE_URL",
    "DEV_POLICY_OID",
    "NOT_FOR_PRODUCTION",
    "ORGAN_CODE_ATTRIBUTE",
    "CertInfo",
    "DevOrgan",
    "DevPki",
    "DevPkiUrls",
    "KeyAlgorithm",
    "RunningResponders",
    "WrittenFile",
    "create_dev_pki",
    "main_init",
    "organ_code_of",
    "parse_organ",
    "serve_dev_pki",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8777"
NOT_FOR_PRODUCTION = "NOT FOR PRODUCTION"
ORGAN_CODE_ATTRIBUTE = NameOID.USER_ID  # 0.9.2342.19200300.100.1.1: where the organisation code goes
MANIFEST = "pki.json"
FORMAT = 1
PKI_ORGANISATION = f"Liên thông development PKI — {NOT_FOR_PRODUCTION}"
PEOPLE = ("Nguyễn Văn A", "Trần Thị B", "Lê Văn C", "Phạm Thị D", "Hoàng Văn E", "Vũ Thị G", "Đặng Văn H")
REVOCATION_REASONS = {r.name: r for r in x509.ReasonFlags if r not in (x509.ReasonFlags.remove_from_crl,)}

ROOT, ISSUING, OCSP, TSA = "root-ca", "issuing-ca", "ocsp-responder", "tsa"
UNTRUSTED_ROOT, UNTRUSTED_SIGNER = "untrusted/root-ca", "untrusted/signer"

_DAY = dt.timedelta(days=1)
_YEAR = dt.timedelta(days=365)


def organ_code_of(cert: x509.Certificate) -> str | None:
    """The organisation code a certificate carries (its subject's UID), or None."""
    values = cert.subject.get_attributes_for_oid(ORGAN_CODE_ATTRIBUTE)
    return str(values[0].value) if values else None


def parse_organ(text: str) -> tuple[str, str]:
    """``CODE=NAME`` (or just ``CODE``) as given on the command line, the code validated.

    Raises :class:`DevPkiError` naming the code when it is not a valid organisation code.
    """
    code, sep, name = text.partition("=")
    code, name = code.strip(), name.strip()
    _check_code(code)
    if sep and not name:
        raise DevPkiError(f"organisation {code}: the name after '=' is empty")
    return code, name or f"Cơ quan {code}"


def _check_code(code: str) -> str:
    try:
        return OrganCode.parse(code).value
    except OrganCodeError as e:
        raise DevPkiError(f"invalid organisation code {code!r}: {e}") from None


# --- the description in pki.json ------------------------------------------------------------------------


@dataclass(frozen=True)
class CertInfo:
    """One certificate of the dev PKI, as ``pki.json`` describes it. Paths are absolute."""

    label: str  # e.g. "organs/000.00.00.G12/organisation": also the file name without extension
    role: str  # root, ca, ocsp, tsa, organisation, signer
    path: Path
    subject: str  # RFC 4514
    issuer: str  # label of the issuing certificate (itself for a root)
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    key_path: Path | None = None
    p12_path: Path | None = None
    organ_code: str | None = None
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.path.read_bytes())

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def _to_json(self, directory: Path) -> dict[str, Any]:
        def rel(p: Path | None) -> str | None:
            return None if p is None else p.relative_to(directory).as_posix()

        return {
            "role": self.role,
            "path": rel(self.path),
            "key": rel(self.key_path),
            "p12": rel(self.p12_path),
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": format(self.serial, "x"),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "organ_code": self.organ_code,
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "revocation_reason": self.revocation_reason,
        }

    @classmethod
    def _from_json(cls, label: str, data: Mapping[str, Any], directory: Path) -> CertInfo:
        def path(key: str) -> Path | None:
            value = data.get(key)
            return None if value is None else directory / value

        revoked_at = data.get("revoked_at")
        return cls(
            label=label,
            role=data["role"],
            path=directory / data["path"],
            subject=data["subject"],
            issuer=data["issuer"],
            serial=int(data["serial"], 16),
            not_before=dt.datetime.fromisoformat(data["not_before"]),
            not_after=dt.datetime.fromisoformat(data["not_after"]),
            sha256=data["sha256"],
            key_path=path("key"),
            p12_path=path("p12"),
            organ_code=data.get("organ_code"),
            revoked_at=None if revoked_at is None else dt.datetime.fromisoformat(revoked_at),
            revocation_reason=data.get("revocation_reason"),
        )


@dataclass(frozen=True)
class DevOrgan:
    """An agency of the dev PKI with its seal (organisation) and one person's (signer) certificate."""

    code: str
    name: str
    organisation: CertInfo
    signer: CertInfo


@dataclass(frozen=True)
class DevPkiUrls:
    ocsp: str
    tsa: str
    crl: str  # the issuing CA's CRL
    root_crl: str
    issuing_ca: str  # AIA caIssuers of end-entity certificates
    root_ca: str

    @classmethod
    def under(cls, base_url: str) -> DevPkiUrls:
        base = base_url.rstrip("/")
        return cls(
            ocsp=f"{base}/ocsp",
            tsa=f"{base}/tsa",
            crl=f"{base}/crl/issuing-ca.crl",
            root_crl=f"{base}/crl/root-ca.crl",
            issuing_ca=f"{base}/certs/issuing-ca.cer",
            root_ca=f"{base}/certs/root-ca.cer",
        )


@dataclass(frozen=True)
class WrittenFile:
    """One line of :func:`main_init`'s summary: what a file is, and where."""

    what: str
    path: Path


@dataclass(frozen=True)
class DevPki:
    """A dev PKI on disk, as described by its ``pki.json``. Load with :meth:`load`."""

    directory: Path
    base_url: str
    key_algorithm: KeyAlgorithm
    created: dt.datetime
    urls: DevPkiUrls
    certificates: Mapping[str, CertInfo]
    organs: tuple[DevOrgan, ...]
    _keys: dict[str, PrivateKey] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- files
    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    @property
    def passphrase_path(self) -> Path:
        return self.directory / "passphrase.txt"

    @property
    def chain_path(self) -> Path:
        """The issuing CA certificate alone (the intermediate every end-entity chain needs)."""
        return self.directory / "chain.pem"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def crl_der_path(self) -> Path:
        return self.directory / "crl.der"

    @property
    def root_crl_path(self) -> Path:
        return self.directory / "root-crl.pem"

    @property
    def root_crl_der_path(self) -> Path:
        return self.directory / "root-crl.der"

    # -- certificates by role
    @property
    def root(self) -> CertInfo:
        return self.certificates[ROOT]

    @property
    def issuing_ca(self) -> CertInfo:
        return self.certificates[ISSUING]

    @property
    def ocsp_responder(self) -> CertInfo:
        return self.certificates[OCSP]

    @property
    def tsa(self) -> CertInfo:
        return self.certificates[TSA]

    @property
    def expired(self) -> CertInfo:
        """A signer certificate of the first agency that expired 30 days before the PKI was created."""
        return self.certificates[f"organs/{self.organs[0].code}/expired"]

    @property
    def revoked(self) -> CertInfo:
        """A signer certificate of the first agency, revoked (keyCompromise) in the CRL and by OCSP."""
        return self.certificates[f"organs/{self.organs[0].code}/revoked"]

    @property
    def untrusted_root(self) -> CertInfo:
        return self.certificates[UNTRUSTED_ROOT]

    @property
    def untrusted_signer(self) -> CertInfo:
        """Claims to be the first agency (same O and UID) but chains to :attr:`untrusted_root`."""
        return self.certificates[UNTRUSTED_SIGNER]

    def organ(self, code: str) -> DevOrgan:
        for organ in self.organs:
            if organ.code == code:
                return organ
        raise DevPkiError(f"the dev PKI in {self.directory} has no organisation {code}")

    # -- keys
    def passphrase(self) -> Passphrase:
        """The passphrase of every ``.key`` and ``.p12`` here (read from ``passphrase.txt`` when needed)."""
        return Passphrase.from_file(self.passphrase_path)

    def private_key(self, label: str) -> PrivateKey:
        """The private key of certificate ``label`` (decrypted once, then kept)."""
        if label not in self._keys:
            info = self.certificates.get(label)
            if info is None or info.key_path is None:
                raise DevPkiError(f"the dev PKI in {self.directory} holds no private key for {label!r}")
            try:
                self._keys[label] = issue.load_key_pem(info.key_path.read_bytes(), self.passphrase().reveal())
            except (OSError, ValueError, TypeError) as e:
                raise DevPkiError(f"cannot load the private key {info.key_path}: {e}") from None
        return self._keys[label]

    def signing_key(self, label: str) -> SoftwareKey:
        """The key of certificate ``label`` as :mod:`signing.keys` loads it (from its PKCS#12 file)."""
        info = self.certificates.get(label)
        if info is None or info.p12_path is None:
            raise DevPkiError(f"the dev PKI in {self.directory} has no PKCS#12 file for {label!r}")
        return load_pkcs12(info.p12_path, self.passphrase(), cache=None)

    def trust_store(self, *, revocation: RevocationMode = "hard-fail", allow_fetching: bool = True) -> TrustStore:
        """A trust store trusting this PKI's root (the issuing CA known as an intermediate)."""
        return TrustStore(
            roots=(self.root.certificate(),),
            intermediates=(self.issuing_ca.certificate(),),
            revocation=revocation,
            allow_fetching=allow_fetching,
        )

    # -- lifecycle
    @classmethod
    def load(cls, directory: Path | str) -> DevPki:
        directory = Path(directory).resolve()
        manifest = directory / MANIFEST
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DevPkiError(f"{directory} holds no dev PKI ({MANIFEST} is missing)") from None
        except (OSError, ValueError) as e:
            raise DevPkiError(f"cannot read {manifest}: {e}") from None
        try:
            if data.get("format") != FORMAT:
                raise DevPkiError(f"{manifest} has format {data.get('format')!r}; this version reads {FORMAT}")
            certs = {
                label: CertInfo._from_json(label, entry, directory) for label, entry in data["certificates"].items()
            }
            organs = tuple(
                DevOrgan(o["code"], o["name"], certs[o["organisation"]], certs[o["signer"]]) for o in data["organs"]
            )
            algorithm = data["key_algorithm"]
            if algorithm not in get_args(KeyAlgorithm):
                raise DevPkiError(f"{manifest}: unknown key algorithm {algorithm!r}")
            return cls(
                directory=directory,
                base_url=data["base_url"],
                key_algorithm=algorithm,
                created=dt.datetime.fromisoformat(data["created"]),
                urls=DevPkiUrls(**data["urls"]),
                certificates=certs,
                organs=organs,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DevPkiError(f"{manifest} is not a valid dev PKI description: {e!r}") from None

    def _save(self) -> None:
        data = {
            "format": FORMAT,
            "warning": f"Liên thông development PKI — {NOT_FOR_PRODUCTION}",
            "created": self.created.isoformat(),
            "base_url": self.base_url,
            "key_algorithm": self.key_algorithm,
            "policy_oid": DEV_POLICY_OID.dotted_string,
            "urls": self.urls.__dict__,
            "passphrase_file": self.passphrase_path.name,
            "chain": self.chain_path.name,
            "crl": {"pem": self.crl_path.name, "der": self.crl_der_path.name},
            "root_crl": {"pem": self.root_crl_path.name, "der": self.root_crl_der_path.name},
            "organs": [
                {"code": o.code, "name": o.name, "organisation": o.organisation.label, "signer": o.signer.label}
                for o in self.organs
            ],
            "certificates": {label: c._to_json(self.directory) for label, c in self.certificates.items()},
        }
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        issue.write_public(self.manifest_path, text.encode("utf-8"))

    def revocations(self, issuer: str) -> tuple[Revocation, ...]:
        """The revoked certificates ``issuer`` (a label) has issued."""
        return tuple(
            Revocation(c.serial, c.revoked_at, REVOCATION_REASONS[c.revocation_reason or "unspecified"])
            for c in self.certificates.values()
            if c.issuer == issuer and c.revoked_at is not None and c.label != issuer
        )

    def _write_crls(self, now: dt.datetime) -> None:
        for ca, pem_path, der_path in (
            (ISSUING, self.crl_path, self.crl_der_path),
            (ROOT, self.root_crl_path, self.root_crl_der_path),
        ):
            revoked = [r for r in self.revocations(ca) if r.revoked_at <= now]
            crl = issue.build_crl(
                self.certificates[ca].certificate(),
                self.private_key(ca),
                revoked,
                this_update=http.dated(now, revoked),
                next_update=now + 30 * _DAY,
                number=int(now.timestamp() * 1000),
            )
            issue.write_public(pem_path, crl.public_bytes(serialization.Encoding.PEM))
            issue.write_public(der_path, crl.public_bytes(serialization.Encoding.DER))

    def revoke(self, label: str, *, at: dt.datetime | None = None, reason: str = "key_compromise") -> DevPki:
        """Revoke certificate ``label`` from ``at``: rewrites ``pki.json`` and the CRL files.

        ``at`` None: the next whole second (CRLs and OCSP count in seconds), waited for, so that whatever
        was signed or timestamped before this call is before the revocation, and the revocation is in
        force when this returns. A running :func:`serve_dev_pki` answers with the new status at once (a
        revocation dated in the future from its date). Returns the reloaded PKI.
        """
        info = self.certificates.get(label)
        if info is None or info.role == "root" or label.startswith("untrusted/"):
            raise DevPkiError(f"no revocable certificate {label!r} in the dev PKI in {self.directory}")
        if reason not in REVOCATION_REASONS:
            raise DevPkiError(f"unknown revocation reason {reason!r}; one of {', '.join(REVOCATION_REASONS)}")
        if at is not None and at.tzinfo is None:
            raise DevPkiError("the revocation time must be timezone-aware")
        if at is None:
            now = dt.datetime.now(dt.UTC)
            when = now.replace(microsecond=0) + (dt.timedelta(seconds=1) if now.microsecond else dt.timedelta())
            time.sleep(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()))
        else:
            when = at.astimezone(dt.UTC).replace(microsecond=0)
        certs = dict(self.certificates)
        certs[label] = replace(info, revoked_at=when, revocation_reason=reason)
        updated = DevPki(
            self.directory, self.base_url, self.key_algorithm, self.created, self.urls, certs, self._relink(certs)
        )
        updated._keys.update(self._keys)
        updated._write_crls(dt.datetime.now(dt.UTC).replace(microsecond=0))
        updated._save()
        return DevPki.load(self.directory)

    def _relink(self, certs: Mapping[str, CertInfo]) -> tuple[DevOrgan, ...]:
        return tuple(DevOrgan(o.code, o.name, certs[o.organisation.label], certs[o.signer.label]) for o in self.organs)

    def summary(self) -> list[WrittenFile]:
        """What the PKI consists of, file by file (the passphrase file by path only)."""
        lines = [
            WrittenFile(f"root CA: {_cn(self.root)}", self.root.path),
            WrittenFile("issuing CA", self.issuing_ca.path),
            WrittenFile("chain (issuing CA)", self.chain_path),
            WrittenFile("CRL of the issuing CA (PEM, DER)", self.crl_path),
            WrittenFile("CRL of the root CA (PEM, DER)", self.root_crl_path),
            WrittenFile(f"OCSP responder, serving {self.urls.ocsp}", self.ocsp_responder.path),
            WrittenFile(f"timestamp authority, serving {self.urls.tsa}", self.tsa.path),
        ]
        for organ in self.organs:
            lines.append(
                WrittenFile(f"{organ.code} {organ.name}: organisation seal (.pem .key .p12)", organ.organisation.path)
            )
            lines.append(WrittenFile(f"{organ.code}: signer {_cn(organ.signer)} (.pem .key .p12)", organ.signer.path))
        lines += [
            WrittenFile(f"test: expired signer (until {self.expired.not_after:%Y-%m-%d})", self.expired.path),
            WrittenFile("test: revoked signer (in the CRL and OCSP)", self.revoked.path),
            WrittenFile("test: untrusted root", self.untrusted_root.path),
            WrittenFile("test: signer under the untrusted root", self.untrusted_signer.path),
            WrittenFile("passphrase of every .key and .p12 (mode 0600)", self.passphrase_path),
            WrittenFile("description of all the above", self.manifest_path),
        ]
        return lines


def _cn(info: CertInfo) -> str:
    values = info.certificate().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else info.subject


# --- creation ---------------------------------------------------------------------------------------------


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    # plain HTTP, as RFC 5280 recommends for CRL and OCSP locations (TLS to check TLS would be circular)
    if parts.scheme != "http" or not parts.hostname:
        raise DevPkiError(f"base URL {base_url!r} must be http://host[:port][/path]")
    if parts.query or parts.fragment:
        raise DevPkiError(f"base URL {base_url!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        raise DevPkiError(f"base URL {base_url!r}: {e}") from None
    return base_url.rstrip("/")


def _person_cn(person: str, organ_name: str, suffix: str = "") -> str:
    room = issue.UB_NAME - len(person) - len(suffix) - 3
    return f"{person} ({issue.fit(organ_name, room)}){suffix}"


class _Issuer:
    """Writes certificates and keys into the directory and keeps their descriptions."""

    def __init__(self, directory: Path, algorithm: KeyAlgorithm, passphrase: bytes, urls: DevPkiUrls) -> None:
        self.directory = directory
        self.algorithm = algorithm
        self.passphrase = passphrase
        self.urls = urls
        self.infos: dict[str, CertInfo] = {}
        self.certs: dict[str, x509.Certificate] = {}
        self.keys: dict[str, PrivateKey] = {}

    def make(
        self,
        label: str,
        role: issue.Role,
        subject: x509.Name,
        issuer: str | None,
        validity: tuple[dt.datetime, dt.datetime],
        *,
        urls: Urls | None = None,
        p12: bool = False,
        revoked: tuple[dt.datetime, str] | None = None,
    ) -> CertInfo:
        key = issue.new_key(self.algorithm)
        cert = issue.issue(
            role=role,
            subject=subject,
            public_key=key.public_key(),
            issuer=None if issuer is None else (self.certs[issuer], self.keys[issuer]),
            self_key=key,
            serial=x509.random_serial_number(),
            not_before=validity[0],
            not_after=validity[1],
            urls=urls or Urls(),
            policies=not label.startswith("untrusted/"),
        )
        base = self.directory / label
        cert_path, key_path = base.with_name(base.name + ".pem"), base.with_name(base.name + ".key")
        issue.write_public(cert_path, issue.pem(cert))
        issue.write_private(key_path, issue.key_pem(key, self.passphrase))
        p12_path = None
        if p12:
            p12_path = base.with_name(base.name + ".p12")
            chain = [] if issuer is None or self.infos[issuer].role == "root" else [self.certs[issuer]]
            issue.write_private(p12_path, issue.pkcs12_bytes(label, key, cert, chain, self.passphrase))
        info = CertInfo(
            label=label,
            role=role,
            path=cert_path,
            subject=cert.subject.rfc4514_string(),
            issuer=issuer or label,
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=cert.fingerprint(hashes.SHA256()).hex(),
            key_path=key_path,
            p12_path=p12_path,
            organ_code=organ_code_of(cert),
            revoked_at=None if revoked is None else revoked[0],
            revocation_reason=None if revoked is None else revoked[1],
        )
        self.infos[label], self.certs[label], self.keys[label] = info, cert, key
        return info

    @property
    def leaf_urls(self) -> Urls:
        return Urls(ca_issuers=self.urls.issuing_ca, ocsp=self.urls.ocsp, crl=self.urls.crl)


def create_dev_pki(
    directory: Path | str,
    organs: Sequence[tuple[str, str]],
    *,
    base_url: str = DEFAULT_BASE_URL,
    key_algorithm: KeyAlgorithm = "rsa2048",
    now: dt.datetime | None = None,
    overwrite: bool = False,
) -> DevPki:
    """Create a dev PKI for ``organs`` (``(code, name)`` pairs; codes validated) under ``directory``.

    ``base_url`` is where :func:`serve_dev_pki` will answer (it goes into every certificate);
    ``key_algorithm`` is used for every key; ``now`` (timezone-aware) is the moment validity periods are
    counted from. A directory that already holds a dev PKI is refused unless ``overwrite``.
    """
    if not organs:
        raise DevPkiError("a dev PKI needs at least one organisation")
    checked: list[tuple[str, str]] = []
    for code, name in organs:
        code = _check_code(code)
        if not name.strip():
            raise DevPkiError(f"organisation {code} has an empty name")
        if any(code == c for c, _ in checked):
            raise DevPkiError(f"organisation {code} is given twice")
        checked.append((code, name.strip()))
    if key_algorithm not in get_args(KeyAlgorithm):
        raise DevPkiError(f"key algorithm {key_algorithm!r} is not one of {', '.join(get_args(KeyAlgorithm))}")
    base_url = _check_base_url(base_url)
    if now is not None and now.tzinfo is None:
        raise DevPkiError("now must be timezone-aware")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)

    directory = Path(directory).resolve()
    manifest = directory / MANIFEST
    if manifest.exists():
        if not overwrite:
            raise DevPkiError(f"{directory} already holds a dev PKI ({MANIFEST}); replace it with overwrite (--force)")
        manifest.unlink()  # first, so that a running responder stops answering from the old PKI
        for sub in ("organs", "untrusted"):
            shutil.rmtree(directory / sub, ignore_errors=True)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _create(directory, checked, base_url, key_algorithm, now)
    except OSError as e:
        raise DevPkiError(f"cannot write the dev PKI into {directory}: {e}") from None


def _create(
    directory: Path, organs: Sequence[tuple[str, str]], base_url: str, algorithm: KeyAlgorithm, now: dt.datetime
) -> DevPki:
    passphrase = secrets.token_urlsafe(24)
    issue.write_private(directory / "passphrase.txt", passphrase.encode("ascii") + b"\n")
    urls = DevPkiUrls.under(base_url)
    it = _Issuer(directory, algorithm, passphrase.encode("ascii"), urls)
    dev, leaf = PKI_ORGANISATION, it.leaf_urls
    long_ago = now - 3 * _YEAR  # CAs and responders: a validator checking a past moment checks them then too
    it.make(
        ROOT,
        "root",
        issue.name(f"Liên thông DEV Root CA — {NOT_FOR_PRODUCTION}", dev),
        None,
        (now - 5 * _YEAR, now + 20 * _YEAR),
    )
    ca_urls = Urls(ca_issuers=urls.root_ca, crl=urls.root_crl)
    it.make(
        ISSUING,
        "ca",
        issue.name(f"Liên thông DEV Issuing CA — {NOT_FOR_PRODUCTION}", dev),
        ROOT,
        (long_ago, now + 10 * _YEAR),
        urls=ca_urls,
    )
    it.make(
        OCSP,
        "ocsp",
        issue.name(f"Liên thông DEV OCSP Responder — {NOT_FOR_PRODUCTION}", dev),
        ISSUING,
        (long_ago, now + 5 * _YEAR),
    )
    it.make(
        TSA,
        "tsa",
        issue.name(f"Liên thông DEV Timestamp Authority — {NOT_FOR_PRODUCTION}", dev),
        ISSUING,
        (long_ago, now + 5 * _YEAR),
        urls=leaf,
    )

    current = (now - _DAY, now + 2 * _YEAR)
    organ_entries = []
    for i, (code, name) in enumerate(organs):
        person, folder = PEOPLE[i % len(PEOPLE)], f"organs/{code}"
        seal_name = issue.name(name, name, organ_code=code)
        org = it.make(f"{folder}/organisation", "organisation", seal_name, ISSUING, current, urls=leaf, p12=True)
        person_name = issue.name(_person_cn(person, name), name, organ_code=code)
        signer = it.make(f"{folder}/signer", "signer", person_name, ISSUING, current, urls=leaf, p12=True)
        organ_entries.append(DevOrgan(code, name, org, signer))
        if i == 0:
            expired_name = issue.name(_person_cn(person, name, " — expired"), name, organ_code=code)
            expired = (now - 400 * _DAY, now - 30 * _DAY)
            it.make(f"{folder}/expired", "signer", expired_name, ISSUING, expired, urls=leaf, p12=True)
            revoked_name = issue.name(_person_cn(person, name, " — revoked"), name, organ_code=code)
            revoked = (now - _DAY, "key_compromise")
            it.make(
                f"{folder}/revoked",
                "signer",
                revoked_name,
                ISSUING,
                (now - 30 * _DAY, current[1]),
                urls=leaf,
                p12=True,
                revoked=revoked,
            )

    # Another root, and a certificate under it that claims to be the first agency (same O and UID).
    first_code, first_name = organs[0]
    other = issue.name(f"Untrusted Root CA — NOT TRUSTED, {NOT_FOR_PRODUCTION}", "Somebody else")
    it.make(UNTRUSTED_ROOT, "root", other, None, (now - _YEAR, now + 10 * _YEAR))
    forged = issue.name(first_name, first_name, organ_code=first_code)
    it.make(UNTRUSTED_SIGNER, "organisation", forged, UNTRUSTED_ROOT, current, p12=True)
    issue.write_public(directory / "chain.pem", issue.pem(it.certs[ISSUING]))

    pki = DevPki(directory, base_url, algorithm, now, urls, dict(it.infos), tuple(organ_entries))
    pki._keys.update(it.keys)
    pki._write_crls(now)
    pki._save()  # last: a responder serves the directory once pki.json is there
    return DevPki.load(directory)


def main_init(
    directory: Path | str,
    organs: Sequence[str | tuple[str, str]],
    *,
    base_url: str = DEFAULT_BASE_URL,
    key_algorithm: KeyAlgorithm = "rsa2048",
    overwrite: bool = False,
) -> list[WrittenFile]:
    """``lienthong pki init``: ``organs`` as ``CODE[=NAME]`` strings or pairs; returns what was written."""
    pairs = [parse_organ(o) if isinstance(o, str) else o for o in organs]
    pki = create_dev_pki(directory, pairs, base_url=base_url, key_algorithm=key_algorithm, overwrite=overwrite)
    return pki.summary()


# --- serving ----------------------------------------------------------------------------------------------


class _StateCache:
    """The responders' view of ``directory``: reloaded whenever ``pki.json`` is replaced."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._state: http.ResponderState | None = None
        self.pki: DevPki | None = None

    def __call__(self) -> http.ResponderState | None:
        try:
            st = (self._directory / MANIFEST).stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                pki = DevPki.load(self._directory)
                self._state, self.pki, self._stamp = _responder_state(pki), pki, stamp
            return self._state

    def describe(self) -> str:
        pki = self.pki
        if pki is None:
            return "Liên thông development PKI — no PKI yet"
        return "\n".join(
            [
                PKI_ORGANISATION,
                f"root: {pki.root.subject}",
                f"OCSP (RFC 6960, POST or GET): {pki.urls.ocsp}",
                f"timestamps (RFC 3161, POST application/timestamp-query): {pki.urls.tsa}",
                f"CRLs: {pki.urls.crl} {pki.urls.root_crl}",
                f"CA certificates: {pki.urls.issuing_ca} {pki.urls.root_ca}",
            ]
        )


def _responder_state(pki: DevPki) -> http.ResponderState:
    certs = {
        label: info.certificate() for label, info in pki.certificates.items() if not label.startswith("untrusted/")
    }
    return http.ResponderState(
        ocsp_url=pki.urls.ocsp,
        tsa_url=pki.urls.tsa,
        crls={
            pki.urls.crl: http.CrlSource(certs[ISSUING], pki.private_key(ISSUING), pki.revocations(ISSUING)),
            pki.urls.root_crl: http.CrlSource(certs[ROOT], pki.private_key(ROOT), pki.revocations(ROOT)),
        },
        certificates={pki.urls.issuing_ca: certs[ISSUING], pki.urls.root_ca: certs[ROOT]},
        ocsp_issuer=certs[ISSUING],
        ocsp_known=frozenset(c.serial for c in pki.certificates.values() if c.issuer == ISSUING),
        ocsp_revoked={r.serial: r for r in pki.revocations(ISSUING)},
        responder_cert=certs[OCSP],
        responder_key=pki.private_key(OCSP),
        tsa_cert=certs[TSA],
        tsa_key=pki.private_key(TSA),
        tsa_chain=(certs[ISSUING],),
    )


class RunningResponders:
    """HTTP responders of a dev PKI running in a background thread. Stop with :meth:`stop` or ``with``."""

    def __init__(self, directory: Path, server: BaseWSGIServer, cache: _StateCache) -> None:
        self.directory = directory
        self.host: str = server.host
        self.port: int = server.server_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        self._server = server
        self._cache = cache
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"dev-pki {self.url}", daemon=True
        )
        self._thread.start()

    @property
    def pki(self) -> DevPki | None:
        """The PKI being served (None while the directory holds none)."""
        self._cache()
        return self._cache.pki

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the server stops (for ``lienthong pki serve``)."""
        self._thread.join(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningResponders({self.url}, {self.directory})"


def serve_dev_pki(directory: Path | str, host: str = "127.0.0.1", port: int | None = None) -> RunningResponders:
    """Start the OCSP, CRL, CA-certificate and timestamp responders for the dev PKI in ``directory``.

    ``port`` None: the port of the PKI's base URL if ``directory`` already holds a PKI, otherwise a free
    one; 0: a free one. ``directory`` may hold no PKI yet: the responders answer 503 until
    :func:`create_dev_pki` has written it (with ``base_url=responders.url``).
    """
    directory = Path(directory).resolve()
    if port is None:
        port = 0
        if (directory / MANIFEST).exists():
            parts = urlsplit(DevPki.load(directory).base_url)
            port = parts.port or 80
    cache = _StateCache(directory)
    if (directory / MANIFEST).exists():
        try:
            cache()  # load now, so that a broken PKI is reported here rather than as HTTP 500s
        except (KeyLoadError, OSError) as e:
            raise DevPkiError(f"cannot serve the dev PKI in {directory}: {e}") from None
    app = http.DevPkiApp(cache, cache.describe)
    try:
        server = http.bind(host, port, app)
    except (OSError, SystemExit) as e:  # werkzeug exits when the port is taken
        raise DevPkiError(f"cannot listen on {host}:{port}: {e}") from None
    return RunningResponders(directory, server, cache)
