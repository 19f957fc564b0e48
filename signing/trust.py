"""Trust configuration: which roots a node trusts, how hard it insists on revocation data, who is who.

Trust roots are configuration (the Government CA of Ban Cơ yếu Chính phủ, licensed public CAs, or the dev
PKI in tests). A :class:`TrustStore` is built once and reused for every verification: certificates are
parsed once, and OCSP responses and CRLs fetched during one verification are kept for the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers import Fetchers
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from schemas import OrganRegistry
from signing._private.fetchers import without_issuer_fetching
from signing._private.revinfo_used import relied_on
from signing.errors import KeyLoadError

RevocationMode = Literal["soft-fail", "hard-fail", "require"]
T = TypeVar("T", asn1_ocsp.OCSPResponse, asn1_crl.CertificateList)
_REMEMBERED = 256  # OCSP responses, and CRLs, a store keeps
# Validation contexts a thread keeps until asked what they relied on (used_revocation); the oldest go first
# in a thread that never asks. An envelope of PDFs at their signature limit needs about 2 per signature.
_VALIDATIONS = 512


@dataclass
class _Validation:
    """One validation context of this store, made at ``made``, and paths answered for it from a cache."""

    made: datetime
    context: ValidationContext
    cached_paths: list[object] = field(default_factory=list)


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (or one DER certificate)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyLoadError(f"cannot read certificates from {path}: {e.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise KeyLoadError(f"{path} does not hold X.509 certificates: {e}") from None
    return certs


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


@dataclass
class TrustStore:
    """Trusted roots, known intermediates, revocation policy and the agency registry.

    ``revocation``: ``soft-fail`` accepts a certificate whose revocation status cannot be fetched,
    ``hard-fail`` does not when the certificate names a source, ``require`` insists on revocation data.
    """

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    revocation: RevocationMode = "soft-fail"
    allow_fetching: bool = True
    # Download a missing issuer from the URL a certificate names (AIA caIssuers). Off: that URL is chosen by
    # whoever made the certificate, before it is trusted (see signing/_private/fetchers.py); configure the
    # intermediates instead. Revocation data is fetched either way when ``allow_fetching``.
    fetch_issuers: bool = False
    registry: OrganRegistry | None = None
    # How long fetched OCSP responses, CRLs and issuer certificates are reused: a revocation is noticed at
    # most this late, and a busy node asks the responders once per certificate per period, not per message.
    revocation_cache_seconds: float = 300.0
    _asn1_roots: list[asn1_x509.Certificate] = field(init=False, repr=False)
    _asn1_intermediates: list[asn1_x509.Certificate] = field(init=False, repr=False)
    _ocsps: list[bytes] = field(default_factory=list, init=False, repr=False)
    _crls: list[bytes] = field(default_factory=list, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.roots:
            raise KeyLoadError("a trust store needs at least one root certificate")
        self._asn1_roots = [to_asn1(c) for c in self.roots]
        self._asn1_intermediates = [to_asn1(c) for c in self.intermediates]

    @classmethod
    def from_files(cls, roots: Sequence[Path], intermediates: Iterable[Path] = (), **kwargs: object) -> TrustStore:
        root_certs = [c for p in roots for c in load_certificates(p)]
        inter = [c for p in intermediates for c in load_certificates(p)]
        return cls(roots=tuple(root_certs), intermediates=tuple(inter), **kwargs)  # type: ignore[arg-type]

    def validation_context(
        self,
        moment: datetime | None,
        *,
        extra_certs: Iterable[x509.Certificate] = (),
        ocsps: Iterable[bytes] = (),
        crls: Iterable[bytes] = (),
    ) -> ValidationContext:
        """A pyhanko-certvalidator context at ``moment`` (None: now) with what this store already knows.

        The thread notes it, to say later what revocation data its validations relied on (used_revocation).
        """
        context = ValidationContext(
            trust_roots=self._asn1_roots,
            other_certs=[*self._asn1_intermediates, *(to_asn1(c) for c in extra_certs)],
            moment=moment,
            allow_fetching=self.allow_fetching,
            # requests, not aiohttp: each verification runs its own event loop, and aiohttp sessions
            # outlive it (leaking sockets); requests holds nothing between calls.
            fetchers=self._fetchers() if self.allow_fetching else None,
            revocation_mode=self.revocation,
            ocsps=[*self._parsed(self._ocsps, asn1_ocsp.OCSPResponse), *ocsps],
            crls=[*self._parsed(self._crls, asn1_crl.CertificateList), *crls],
            retroactive_revinfo=moment is not None,
        )
        validations: list[_Validation] | None = getattr(self._local, "validations", None)
        if validations is None:
            validations = self._local.validations = []
        validations.append(_Validation(datetime.now(UTC), context))
        if len(validations) > _VALIDATIONS:
            del validations[:-_VALIDATIONS]
        return context

    def note_cached_path(self, context: ValidationContext, path: object) -> None:
        """``path`` was validated for ``context`` from a cache (pyHanko did not validate it in the context)."""
        for validation in reversed(getattr(self._local, "validations", ())):
            if validation.context is context:
                validation.cached_paths.append(path)
                return

    def used_revocation(self, since: datetime) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The OCSP responses and CRLs (DER) that this thread's validations since ``since`` relied on, whether
        fetched then, remembered, cached with a path, or embedded in the document; this thread forgets its
        validations up to now. What each relied on: its context's data about a certificate it validated
        (see signing._private.revinfo_used)."""
        validations: list[_Validation] = getattr(self._local, "validations", [])
        self._local.validations = []
        ocsps: dict[bytes, None] = {}
        crls: dict[bytes, None] = {}
        for validation in validations:
            if validation.made >= since:
                used_ocsps, used_crls = relied_on(validation.context, validation.cached_paths)
                ocsps.update(dict.fromkeys(used_ocsps))
                crls.update(dict.fromkeys(used_crls))
        return tuple(ocsps), tuple(crls)

    def _parsed(self, remembered: list[bytes], kind: type[T]) -> list[T | bytes]:
        """``remembered``, each parsed once per thread (a context made from bytes parses them again, and a
        node may remember hundreds). One copy per thread: asn1crypto parses lazily, in place, so a parse
        in progress in one thread is not safe to read from another."""
        cache: dict[bytes, object] | None = getattr(self._local, "parsed", None)
        if cache is None or len(cache) > 2 * _REMEMBERED:  # forget what the store no longer remembers
            cache = self._local.parsed = {}
        out: list[T | bytes] = []
        for der in list(remembered):
            found = cache.get(der)
            if not isinstance(found, kind):
                try:
                    found = cache[der] = kind.load(der)
                except ValueError:
                    out.append(der)  # as before: pyhanko-certvalidator reports it
                    continue
            out.append(found)
        return out

    def _fetchers(self) -> Fetchers:
        """This thread's fetchers, renewed every ``revocation_cache_seconds``; they keep what they fetched.

        One set per thread: each verification runs its own event loop, and a fetch in progress is awaited
        through an asyncio event that belongs to one loop.
        """
        now = time.monotonic()
        held: tuple[Fetchers, float] | None = getattr(self._local, "fetchers", None)
        if held is None or now - held[1] >= self.revocation_cache_seconds:
            fetchers = RequestsFetcherBackend(per_request_timeout=10).get_fetchers()
            held = (fetchers if self.fetch_issuers else without_issuer_fetching(fetchers), now)
            self._local.fetchers = held
        return held[0]

    def revocation_snapshot(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The OCSP responses and CRLs this store knows now (DER), for caches that depend on them."""
        return tuple(self._ocsps), tuple(self._crls)

    def fetched_revocation(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The OCSP responses and CRLs this thread's fetchers fetched and still hold (DER), remembered or not.

        pyHanko fetches a PDF signer's revocation data itself, so only this knows it; it is evidence too.
        """
        held: tuple[Fetchers, float] | None = getattr(self._local, "fetchers", None)
        if held is None:
            return (), ()
        fetchers = held[0]
        ocsps = tuple(r.dump() for r in fetchers.ocsp_fetcher.fetched_responses())
        return ocsps, tuple(c.dump() for c in fetchers.crl_fetcher.fetched_crls())

    def from_stored_revocation(
        self, ocsps: Iterable[bytes], crls: Iterable[bytes], *, revocation: RevocationMode = "hard-fail"
    ) -> TrustStore:
        """This store's roots, intermediates and registry, knowing only ``ocsps`` and ``crls`` and fetching
        nothing: to verify as of a past moment from the revocation data kept then. ``hard-fail`` by default, so
        a certificate that names a revocation source and has no kept data is not passed, whatever this store's
        own policy is."""
        store = TrustStore(
            roots=self.roots,
            intermediates=self.intermediates,
            revocation=revocation,
            allow_fetching=False,
            registry=self.registry,
        )
        store._ocsps, store._crls = list(dict.fromkeys(ocsps)), list(dict.fromkeys(crls))
        return store

    def remember_revocation(self, ocsps: Iterable[bytes], crls: Iterable[bytes]) -> None:
        """Keep fetched OCSP responses and CRLs for later verifications (bounded)."""
        for store, new in ((self._ocsps, ocsps), (self._crls, crls)):
            for item in new:
                if item not in store:
                    store.append(item)
            del store[:-_REMEMBERED]
