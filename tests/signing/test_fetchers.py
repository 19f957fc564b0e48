"""A certificate cannot make the node request an address of its choosing (AIA caIssuers is not followed),
while revocation data is still fetched for certificates that chain to a trusted root."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import PathBuildingError

from signing.trust import TrustStore
from tests.signing.pki_helpers import MiniPki


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def internal_service() -> Iterator[str]:
    """Stands for an address inside the node's network that a stranger would like it to call."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def _stranger_certificate(issuer_url: str) -> x509.Certificate:
    """Issued by a CA the node does not know, naming ``issuer_url`` as where to download that CA."""
    ca_key, key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sở Giả mạo")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unknown CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(f"{issuer_url}/admin/delete-everything"),
                    )
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _build_path(trust: TrustStore, cert: x509.Certificate) -> None:
    asn1 = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    validator = CertificateValidator(asn1, validation_context=trust.validation_context(None))
    asyncio.run(validator.async_validate_usage({"digital_signature"}))


@pytest.mark.parametrize("fetch_issuers", [False, True])
def test_a_certificate_names_an_issuer_url_and_the_node_calls_it_only_when_told_to(
    internal_service: str, fetch_issuers: bool
) -> None:
    trust = TrustStore(roots=(MiniPki.create().root,), fetch_issuers=fetch_issuers)
    with pytest.raises(PathBuildingError):
        _build_path(trust, _stranger_certificate(internal_service))
    # True shows the probe is real: pyhanko-certvalidator does follow the URL when allowed to.
    assert _Recorder.hits == (["/admin/delete-everything"] if fetch_issuers else [])
