"""Which PAdES level a signature reaches, by what the document holds for *it* (ETSI EN 319 142-1).

* B-B: a signature; B-T: with a signature timestamp.
* B-LT: a B-T signature whose validation data is in the document: for every certificate of the signer's
  path but the trust anchor (and those marked id-pkix-ocsp-nocheck), an OCSP response about it or a CRL
  from its issuer, in the document's DSS or in the signature's own CMS (Adobe's revocation-info
  archival attribute). A DSS that only holds data for other signers does not make a signature B-LT.
* B-LTA: a B-LT signature covered by a document timestamp, that is one added in a later revision.

The level describes what the document carries; whether the signature passes is the verification's verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509

__all__ = ["RevocationIndex", "cms_revocation_data", "pades_level"]


@dataclass
class RevocationIndex:
    """What a set of OCSP responses and CRLs is about: certificate IDs (OCSP) and issuers (CRLs)."""

    ocsp_ids: set[tuple[str, bytes, int]] = field(default_factory=set)  # (hash algorithm, issuer name hash, serial)
    crl_issuers: set[bytes] = field(default_factory=set)  # DER of each CRL's issuer name

    @classmethod
    def of(cls, ocsps: Iterable[Any], crls: Iterable[Any]) -> RevocationIndex:
        """From DER bytes or parsed asn1crypto values; what cannot be read is about nothing."""
        index = cls()
        for item in ocsps:
            try:
                response = item if isinstance(item, asn1_ocsp.OCSPResponse) else asn1_ocsp.OCSPResponse.load(item)
                basic = response["response_bytes"]["response"].parsed
                for single in basic["tbs_response_data"]["responses"]:
                    cert_id = single["cert_id"]
                    index.ocsp_ids.add(
                        (
                            cert_id["hash_algorithm"]["algorithm"].native,
                            cert_id["issuer_name_hash"].native,
                            cert_id["serial_number"].native,
                        )
                    )
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        for item in crls:
            try:
                parsed = item if isinstance(item, asn1_crl.CertificateList) else asn1_crl.CertificateList.load(item)
                index.crl_issuers.add(parsed["tbs_cert_list"]["issuer"].dump(force=True))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
        return index

    def __or__(self, other: RevocationIndex) -> RevocationIndex:
        return RevocationIndex(self.ocsp_ids | other.ocsp_ids, self.crl_issuers | other.crl_issuers)

    def covers(self, cert: asn1_x509.Certificate) -> bool:
        """Whether an OCSP response about ``cert`` or a CRL from its issuer is here."""
        issuer = cert.issuer.dump(force=True)
        if issuer in self.crl_issuers:
            return True
        serial = cert.serial_number
        for algorithm in {a for a, _, s in self.ocsp_ids if s == serial}:
            try:
                name_hash = hashlib.new(algorithm, cert.issuer.dump()).digest()
            except ValueError:
                continue
            if (algorithm, name_hash, serial) in self.ocsp_ids:
                return True
        return False


def cms_revocation_data(signer_info: Any) -> RevocationIndex:
    """The OCSP responses and CRLs a signature carries in its CMS (adbe-revocationInfoArchival)."""
    try:
        for attr in signer_info["signed_attrs"] or ():
            if attr["type"].native == "adobe_revocation_info_archival":
                found = RevocationIndex()
                for value in attr["values"]:
                    found = found | RevocationIndex.of(value["ocsp"] or (), value["crl"] or ())
                return found
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    return RevocationIndex()


def _needs_revocation_data(cert: asn1_x509.Certificate) -> bool:
    try:
        return cert.ocsp_no_check_value is None
    except ValueError:
        return True


def pades_level(
    *,
    timestamped: bool,
    path: Iterable[asn1_x509.Certificate],
    revocation_data: RevocationIndex,
    covered_by_document_timestamp: bool,
) -> str:
    """The level (see the module notes); ``path``: the signer's path without its trust anchor, signer last."""
    if not timestamped:
        return "B-B"
    certs = [c for c in path if _needs_revocation_data(c)]
    if not certs or not all(revocation_data.covers(c) for c in certs):
        return "B-T"
    return "B-LTA" if covered_by_document_timestamp else "B-LT"
