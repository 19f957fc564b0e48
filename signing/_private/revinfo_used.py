"""Which OCSP responses and CRLs a validation relied on: those about a certificate it validated.

pyhanko-certvalidator records every certificate path it validates in its validation context (the signer's,
a timestamp's TSA, an OCSP responder's), and checks revocation for each certificate on such a path but the
trust anchor, with whatever the context holds: the store's remembered data, the document's DSS, and what
the context's fetchers fetched. The data a validation relied on is, then, the data in its context about
those certificates, the freshest of each as pyhanko-certvalidator prefers it: an OCSP response naming one of
them (serial and issuer name hash), a CRL issued by the issuer of one of them. Anything else the context held
(older responses, responses about other senders' certificates the store remembers) was not used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from asn1crypto import ocsp as asn1_ocsp
from pyhanko_certvalidator import ValidationContext

__all__ = ["relied_on", "validated_paths"]


def validated_paths(context: ValidationContext) -> list[Any]:
    """The paths ``context`` validated (pyhanko-certvalidator records each, by certificate)."""
    return list(getattr(context, "_validate_map", {}).values())


def relied_on(context: ValidationContext, paths: Iterable[Any] = ()) -> tuple[list[bytes], list[bytes]]:
    """The OCSP responses and CRLs (DER) in ``context`` about a certificate of a path it validated, or of
    ``paths`` (validations answered from a cache, outside the context): for each certificate the freshest
    response about it, and for each issuer its freshest CRL, as pyhanko-certvalidator picks them (older ones
    the store still remembers were not needed)."""
    serials: dict[int, list[Any]] = {}  # serial -> the issuer names of the certificates with that serial
    issuers: set[bytes] = set()
    for path in (*validated_paths(context), *paths):
        for cert in path.iter_certs(include_root=False):
            serials.setdefault(cert.serial_number, []).append(cert.issuer)
            issuers.add(cert.issuer.dump())
    if not serials:
        return [], []
    freshest: dict[object, tuple[Any, bytes]] = {}
    for response in context.ocsps:
        for subject, issued in _about(response, serials):
            if subject not in freshest or issued > freshest[subject][0]:
                freshest[subject] = (issued, response.dump())
    for certificate_list in context.crls:
        try:
            tbs = certificate_list["tbs_cert_list"]
            issuer, issued = tbs["issuer"].dump(), tbs["this_update"].native
        except (ValueError, KeyError, TypeError):
            continue
        if issuer in issuers and (issuer not in freshest or issued > freshest[issuer][0]):
            freshest[issuer] = (issued, certificate_list.dump())
    ocsps = [der for key, (_, der) in freshest.items() if isinstance(key, tuple)]
    crls = [der for key, (_, der) in freshest.items() if isinstance(key, bytes)]
    return list(dict.fromkeys(ocsps)), list(dict.fromkeys(crls))


def _about(response: asn1_ocsp.OCSPResponse, serials: dict[int, list[Any]]) -> Iterator[tuple[tuple[int, bytes], Any]]:
    """(serial, issuer name hash) of each certificate in ``serials`` the response answers for, with its time."""
    try:
        for single in response.basic_ocsp_response["tbs_response_data"]["responses"]:
            cert_id = single["cert_id"]
            serial = cert_id["serial_number"].native
            names = serials.get(serial)
            if not names:
                continue
            algorithm = cert_id["hash_algorithm"]["algorithm"].native
            name_hash = cert_id["issuer_name_hash"].native
            if any(hashlib.new(algorithm, name.dump()).digest() == name_hash for name in names):
                yield (serial, name_hash), single["this_update"].native
    except (ValueError, KeyError, TypeError):
        return
