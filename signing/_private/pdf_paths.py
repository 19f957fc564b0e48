"""The certificate path of a PAdES signer, validated through the shared path cache.

pyHanko validates a PDF signature in one call: integrity, the CMS signature value, timestamps, coverage,
the difference analysis and, inside ``generic_cms.cms_basic_validation``, the signer's certificate path
(``generic_cms.validate_cert_usage``: path building, PKIX validation, revocation, key usage). Only that
last step is remembered, with the rules of ``signing._private.pathcache`` (passes only, at most 60 s, no
longer than any certificate or revocation data stays valid); everything else pyHanko does every time.

``cms_basic_validation`` looks ``validate_cert_usage`` up as a module global on each call, so replacing
that attribute is enough. The replacement answers from the cache only inside :func:`reusing_passed_paths`
(which ``signing.pdf`` wraps around each verification), only for the validation context made there, only
for the key usage pyHanko asks of a PDF signer and only while that context holds no revocation data but
what the store knew when it was made; any other call goes straight to pyHanko's function. What is
remembered is pyHanko's own result for the same inputs, so the status it reports is the same.

The key: the signer's certificate; every certificate path building could use (the store's roots and
intermediates, the certificates the signature carried, and those of its timestamp token, which pyHanko
validates with the same context first); the validation moment; the store's revocation policy and whether
it may fetch; and the revocation data the context held when it was made (the store's, and what this
thread's fetchers fetched earlier and still keep).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from signing._private.pathcache import PathCache, RevocationSnapshot, per_store, reusable_until
from signing.trust import TrustStore

__all__ = ["Evidence", "install", "reusing_passed_paths"]

_ValidateCertUsage = Callable[..., Awaitable[Any]]

# The constraints pyHanko puts on a PDF signer's certificate when the caller gives none (as signing.pdf).
_PDF_SIGNER_USAGE = PdfSignatureStatus.default_usage_constraints(None)


def _is_pyhankos(function: object) -> bool:
    return (
        getattr(function, "__module__", None) == "pyhanko.sign.validation.generic_cms"
        and getattr(function, "__qualname__", None) == "validate_cert_usage"
    )


_original: _ValidateCertUsage | None = (
    generic_cms.validate_cert_usage if _is_pyhankos(generic_cms.validate_cert_usage) else None
)


@dataclass(frozen=True, slots=True)
class _Scope:
    trust: TrustStore
    context: ValidationContext
    moment: datetime | None
    revinfo: RevocationSnapshot  # the OCSP responses and CRLs the context held when it was made (DER)


_SCOPE: ContextVar[_Scope | None] = ContextVar("signing_pdf_path_scope", default=None)


class _PdfPathCache(PathCache[Any]):
    """Passed PDF signer path validations of one trust store: pyHanko's results, by the key above."""


def _held(context: ValidationContext) -> RevocationSnapshot:
    # The store's OCSP responses and CRLs, and what this thread's fetchers fetched before (they keep it)
    return tuple(o.dump() for o in context.ocsps), tuple(c.dump() for c in context.crls)


@dataclass(frozen=True)
class Evidence:
    """Validation data a document carries for the long term (its DSS): used as the store's own."""

    certs: tuple[x509.Certificate, ...] = ()
    ocsps: tuple[bytes, ...] = ()  # DER
    crls: tuple[bytes, ...] = ()  # DER


@contextmanager
def reusing_passed_paths(
    trust: TrustStore, moment: datetime | None, evidence: Evidence = Evidence()
) -> Iterator[ValidationContext]:
    """A validation context of ``trust`` at ``moment``, with the document's ``evidence``, whose signer path
    validations may be reused (the evidence is part of what they depend on: the certificates path building
    could use, and the revocation data held)."""
    context = trust.validation_context(moment, extra_certs=evidence.certs, ocsps=evidence.ocsps, crls=evidence.crls)
    token = _SCOPE.set(_Scope(trust, context, moment, _held(context)))
    try:
        yield context
    finally:
        _SCOPE.reset(token)


async def validate_cert_usage(
    cert: Any,
    validation_context: ValidationContext,
    key_usage_settings: Any,
    paths: Any,
    pkix_validation_params: Any = None,
) -> Any:
    """``generic_cms.validate_cert_usage``, answered from the cache when it may be (see above)."""
    assert _original is not None  # installed only when it was found
    scope = _SCOPE.get()
    if (
        scope is None
        or validation_context is not scope.context
        or pkix_validation_params is not None
        or key_usage_settings != _PDF_SIGNER_USAGE
        or _held(validation_context) != scope.revinfo  # fetched while validating the timestamp
    ):
        return await _original(cert, validation_context, key_usage_settings, paths, pkix_validation_params)
    trust = scope.trust
    usable = list(validation_context.certificate_registry)
    key = (
        cert.dump(),
        tuple(sorted(c.dump() for c in usable)),
        scope.moment,
        trust.revocation,
        trust.allow_fetching,
        scope.revinfo,
    )
    cache = per_store(trust, _PdfPathCache)
    now = datetime.now(UTC)
    found = cache.get(key, now)
    if found is not None:
        # what the path relied on is in the context (its revocation data is part of the key): say which
        trust.note_cached_path(validation_context, found.success_result)
        return found
    result = await _original(cert, validation_context, key_usage_settings, paths, pkix_validation_params)
    path = result.success_result
    held = _held(validation_context)
    until = reusable_until(
        trust,
        passed=path is not None and result.error_subindic is None and result.revo_details is None,
        learnt_revocation_data=held != scope.revinfo,
        had_revocation_data=any(held),
        presented=_presented(trust, [cert, *usable]),
        path_not_after=[c.not_valid_after for c in path] if path is not None else [],
        moment=scope.moment,
        now=now,
        revinfo=scope.revinfo,
    )
    if until is not None and _fully_parsed(path):
        cache.put(key, result, now, until)
    return result


def _fully_parsed(path: Any) -> bool:
    """Parse every part of the path's certificates now: asn1crypto parses lazily, in place, and a cached
    result is read by other threads (pyHanko checks seed value constraints against it)."""
    try:
        for cert in path:
            _ = cert.native
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _presented(trust: TrustStore, usable: list[Any]) -> Iterator[x509.Certificate]:
    """The signer's and the other certificates path building could use, but the store's roots (made only
    when asked for: in soft-fail mode with fetching allowed)."""
    roots = {r.public_bytes(Encoding.DER) for r in trust.roots}
    for cert in usable:
        der = cert.dump()
        if der not in roots:
            yield x509.load_der_x509_certificate(der)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Put :func:`validate_cert_usage` in place (idempotent), only over pyHanko's own function."""
    global _installed
    with _install_lock:
        if not _installed and _original is not None and generic_cms.validate_cert_usage is _original:
            generic_cms.validate_cert_usage = validate_cert_usage
        _installed = True
