"""What a validation may fetch over the network: revocation data yes, issuer certificates no.

A certificate can name where to download its issuer (AIA ``caIssuers``). Path building follows that URL before
anything about the certificate is trusted, so honouring it lets anyone who can put a certificate in front of
the node (in an envelope, or inside a PDF) make the node request an address of their choosing (SSRF).
Revocation URLs are only followed for certificates already chained to a trusted root, so they stay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable

from asn1crypto import cms, crl, x509
from pyhanko_certvalidator.fetchers import Fetchers
from pyhanko_certvalidator.fetchers.api import CertificateFetcher


class NoIssuerFetching(CertificateFetcher):
    """A certificate fetcher that never fetches: issuers come from the trust store's configured certificates."""

    async def fetch_cert_issuers(
        self, cert: x509.Certificate | cms.AttributeCertificateV2
    ) -> AsyncGenerator[x509.Certificate, None]:
        return
        yield  # an async generator that yields nothing

    async def fetch_crl_issuers(self, certificate_list: crl.CertificateList) -> AsyncGenerator[x509.Certificate, None]:
        return
        yield

    def fetched_certs(self) -> Iterable[x509.Certificate]:
        return ()


def without_issuer_fetching(fetchers: Fetchers) -> Fetchers:
    """``fetchers`` with issuer fetching turned off (OCSP and CRL fetching kept)."""
    return Fetchers(
        ocsp_fetcher=fetchers.ocsp_fetcher, crl_fetcher=fetchers.crl_fetcher, cert_fetcher=NoIssuerFetching()
    )
