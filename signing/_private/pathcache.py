"""Passed certificate path validations, reused briefly per trust store (envelopes and PDFs alike).

Path validation (pyhanko-certvalidator: building the path, checking every signature, validity and key
usage along it, revocation) is most of what verifying a signature costs, and a node verifies message
after message from the same few senders. A *passed* validation is reused when everything it depended on
is the same:

* the key: the signer's certificate and the other certificates path building could use (those the
  signature carried), the key usage asked for, the validation moment (None: now), the store's revocation
  policy and whether it may fetch, and the revocation data the store knows (OCSP responses and CRLs,
  compared in full: data learnt since, good or bad, means validating again). Each user of a cache builds
  its key from these;
* the time: it was validated at ``since`` and is reused until ``until``, at most 60 s later, and for
  validation "now" no later than the end of validity of any certificate on the path or the next update
  of any OCSP response or CRL the store holds (one without a next update: no reuse). Certificates that
  were valid at ``since`` stay valid until their ``not_after``, and revocation data stays fresh until
  its next update, so the outcome cannot differ within that window.

Never reused (:func:`reusable_until` says None): failures and indeterminate results (validated again
every time), results for which revocation data was fetched during the validation (the next one runs with
that data known, as it would have anyway), and passes in soft-fail mode with fetching allowed where a
certificate names a revocation source but no revocation data was at hand (the fetch may have failed: it
is retried). The roots and intermediates of a store are fixed when it is made, so they need not be in
the key.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar, cast

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509

from signing.trust import TrustStore

__all__ = [
    "PATH_CACHE_SECONDS",
    "PATH_CACHE_SIZE",
    "CachedPath",
    "PathCache",
    "names_revocation_source",
    "next_updates",
    "per_store",
    "reusable_until",
]

PATH_CACHE_SECONDS = 60
PATH_CACHE_SIZE = 256

T = TypeVar("T")
C = TypeVar("C")
RevocationSnapshot = tuple[tuple[bytes, ...], tuple[bytes, ...]]


@dataclass(frozen=True, slots=True)
class CachedPath(Generic[T]):
    check: T
    since: datetime
    until: datetime


class PathCache(Generic[T]):
    """Passed validations of one trust store, by key, each with the window it may be reused in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, CachedPath[T]] = {}

    def get(self, key: Hashable, now: datetime) -> T | None:
        entry = self._entries.get(key)
        if entry is not None and entry.since <= now < entry.until:
            return entry.check
        return None

    def put(self, key: Hashable, check: T, since: datetime, until: datetime) -> None:
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= PATH_CACHE_SIZE:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = CachedPath(check, since, until)


def reusable_until(
    trust: TrustStore,
    *,
    passed: bool,
    learnt_revocation_data: bool,
    had_revocation_data: bool,
    presented: Iterable[x509.Certificate],
    path_not_after: Iterable[datetime],
    moment: datetime | None,
    now: datetime,
    revinfo: RevocationSnapshot,
) -> datetime | None:
    """Until when a validation made at ``now`` may be reused (see the module's docstring); None: not at all.

    ``learnt_revocation_data``: revocation data was fetched while validating; ``had_revocation_data``:
    the validation had some at hand (known before or fetched); ``presented``: the certificates that came
    with the signature; ``path_not_after``: the end of validity of each certificate on the path.
    """
    if not passed or learnt_revocation_data:
        return None
    if (
        trust.allow_fetching
        and trust.revocation == "soft-fail"
        and not had_revocation_data
        and any(names_revocation_source(c) for c in (*presented, *trust.intermediates))
    ):
        return None
    until = now + timedelta(seconds=PATH_CACHE_SECONDS)
    if moment is None:
        deadlines = list(path_not_after)
        updates = next_updates(*revinfo)
        if updates is None:
            return None
        deadlines.extend(updates)
        until = min([until, *deadlines])
    return until if until > now else None


def names_revocation_source(cert: x509.Certificate) -> bool:
    for extension in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        try:
            cert.extensions.get_extension_for_class(extension)
            return True
        except x509.ExtensionNotFound:
            continue
    return False


def next_updates(ocsps: tuple[bytes, ...], crls: tuple[bytes, ...]) -> list[datetime] | None:
    """The next update of every OCSP response and CRL; None if one has none (or cannot be read)."""
    found: list[datetime] = []
    try:
        for der in ocsps:
            tbs = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]
            for single in tbs["responses"]:
                found.append(single["next_update"].native)
        for der in crls:
            found.append(asn1_crl.CertificateList.load(der)["tbs_cert_list"]["next_update"].native)
    except (ValueError, KeyError, TypeError):
        return None
    if any(f is None for f in found):
        return None
    return found


_STORES: dict[int, tuple[weakref.ref[TrustStore], dict[type, object]]] = {}
_STORES_LOCK = threading.Lock()


def per_store(trust: TrustStore, kind: type[C]) -> C:
    """The one ``kind()`` of ``trust`` (a TrustStore is not hashable: kept by identity, dropped with it)."""
    ident = id(trust)
    with _STORES_LOCK:
        found = _STORES.get(ident)
        if found is None or found[0]() is not trust:

            def forget(ref: weakref.ref[TrustStore], ident: int = ident) -> None:
                with _STORES_LOCK:
                    if _STORES.get(ident, (None,))[0] is ref:
                        del _STORES[ident]

            found = (weakref.ref(trust, forget), {})
            _STORES[ident] = found
        caches = found[1]
        made = caches.get(kind)
        if made is None:
            made = caches[kind] = kind()
        return cast(C, made)
