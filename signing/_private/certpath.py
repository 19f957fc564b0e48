"""Certificate path validation with pyhanko-certvalidator, mapped onto report indications."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import (
    DisallowedAlgorithmError,
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from signing._private.revinfo_used import relied_on
from signing.report import CertificateInfo, Indication, RevocationEvidence, SubIndication
from signing.trust import TrustStore, to_asn1


@dataclass
class CertificateCheck:
    indication: Indication
    sub_indication: SubIndication | None = None
    reasons: list[str] = field(default_factory=list)
    chain: tuple[CertificateInfo, ...] = ()
    revocation: tuple[RevocationEvidence, ...] = ()


def check_certificate(
    trust: TrustStore,
    cert: x509.Certificate,
    others: Iterable[x509.Certificate],
    moment: datetime | None,
    *,
    key_usage: frozenset[str] = frozenset({"digital_signature"}),
    extended_key_usage: frozenset[str] | None = None,
    ocsps: Iterable[bytes] = (),
    crls: Iterable[bytes] = (),
) -> CertificateCheck:
    """Is there a path from ``cert`` to a trusted root, valid and unrevoked at ``moment``?"""
    others = list(others)
    context = trust.validation_context(moment, extra_certs=others, ocsps=ocsps, crls=crls)
    validator = CertificateValidator(
        to_asn1(cert), intermediate_certs=[to_asn1(c) for c in others], validation_context=context
    )
    subject = CertificateInfo.of(cert).common_name
    check = CertificateCheck(Indication.TOTAL_PASSED)
    try:
        path = asyncio.run(validator.async_validate_usage(set(key_usage), extended_key_usage=extended_key_usage))
        # leaf first, root last: the order a reader follows the chain
        check.chain = tuple(CertificateInfo.of(x509.load_der_x509_certificate(c.dump())) for c in reversed(list(path)))
    except RevokedError as e:
        check = CertificateCheck(Indication.TOTAL_FAILED, SubIndication.REVOKED, [f"certificate of {subject}: {e}"])
    except ExpiredError as e:
        check = CertificateCheck(Indication.INDETERMINATE, SubIndication.EXPIRED, [f"certificate of {subject}: {e}"])
    except NotYetValidError as e:
        check = CertificateCheck(
            Indication.INDETERMINATE, SubIndication.NOT_YET_VALID, [f"certificate of {subject}: {e}"]
        )
    except InsufficientRevinfoError as e:
        check = CertificateCheck(
            Indication.INDETERMINATE, SubIndication.REVOCATION_UNKNOWN, [f"revocation status of {subject} unknown: {e}"]
        )
    except PathBuildingError as e:
        check = CertificateCheck(
            Indication.INDETERMINATE,
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            [f"no chain from {subject} to a trusted root: {e}"],
        )
    except DisallowedAlgorithmError as e:
        check = CertificateCheck(
            Indication.INDETERMINATE,
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            [f"certificate of {subject} uses a disallowed algorithm: {e}"],
        )
    except InvalidCertificateError as e:
        check = CertificateCheck(
            Indication.TOTAL_FAILED,
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            [f"certificate of {subject} may not be used to sign: {e}"],
        )
    except (PathValidationError, ValidationError) as e:
        check = CertificateCheck(
            Indication.INDETERMINATE,
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            [f"certificate path of {subject} is not valid: {e}"],
        )
    fetched_ocsps = [o.dump() for o in context.ocsps]
    fetched_crls = [c.dump() for c in context.crls]
    # the report names what the validation relied on, not everything the store remembers
    used_ocsps, used_crls = relied_on(context)
    check.revocation = tuple(_ocsp_evidence(used_ocsps)) + tuple(
        RevocationEvidence(
            kind="crl",
            certificate_serial=format(cert.serial_number, "x"),
            status="good" if check.sub_indication is not SubIndication.REVOKED else "revoked",
            source="crl",
            der_sha256=hashlib.sha256(c).hexdigest(),
        )
        for c in used_crls
    )
    trust.remember_revocation(fetched_ocsps, fetched_crls)
    return check


def _ocsp_evidence(responses: list[bytes]) -> Iterable[RevocationEvidence]:
    for der in responses:
        try:
            response = asn1_ocsp.OCSPResponse.load(der)
            basic = response.basic_ocsp_response["tbs_response_data"]
            for single in basic["responses"]:
                status = single["cert_status"].name  # good / revoked / unknown
                revoked_at = single["cert_status"].chosen["revocation_time"].native if status == "revoked" else None
                yield RevocationEvidence(
                    kind="ocsp",
                    certificate_serial=format(single["cert_id"]["serial_number"].native, "x"),
                    status=status if status in ("good", "revoked") else "unknown",
                    source="ocsp",
                    issued_at=basic["produced_at"].native,
                    revoked_at=revoked_at,
                    der_sha256=hashlib.sha256(der).hexdigest(),
                )
        except (ValueError, KeyError, TypeError):
            continue
