"""Fixtures for signature tests: a small CA with software keys, and a real SoftHSM2 token.

``test_ca`` (session): Root CA → Issuing CA → an RSA-2048 and an ECDSA P-256 leaf, every key and
certificate also written as PEM files. ``test_ca.issue(public_key, name)`` certifies any other key.

``softhsm_token`` (session): a fresh SoftHSM2 token (private ``SOFTHSM2_CONF`` and token directory) with an
RSA-2048 key (``org-seal``) and an ECDSA P-256 key (``org-seal-ec``) *generated on the token*, each with
its certificate from ``test_ca`` stored on the token under the same label and written to a file. Under
``CI=true`` a missing SoftHSM2 fails the tests; elsewhere they are skipped with the reason.

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the module is first initialised in the process, so there is
one token per test session: reuse this fixture rather than making another. Give python-pkcs11 the
resolved module path (``softhsm_token.module``) as ``signing.keys`` does: the same library loaded under
two names is initialised twice and the second ``C_Initialize`` fails.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import require

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ORGAN_CODE = "000.01.41.H41"  # mã định danh of node.samples.SENDER, carried by every leaf certificate here

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def _name(common_name: str, organ_code: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if organ_code:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, organ_code))
    return x509.Name(attrs)


def _certificate(
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    days: int = 365,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    """The one certificate builder of the test suite (CA or signing leaf)."""
    usage = x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def write_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> Path:
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)
    return path


def write_certs(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@dataclass
class Leaf:
    """A software key with its certificate, in memory and as PEM files."""

    key: PrivateKey
    cert: x509.Certificate
    key_path: Path
    cert_path: Path


@dataclass
class CaFixture:
    """Root CA → Issuing CA, and two leaves (RSA-2048, ECDSA P-256) issued by the Issuing CA."""

    directory: Path
    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey
    root_path: Path  # the trust anchor, PEM
    chain_path: Path  # the intermediate (Issuing CA), PEM: what a signer sends along
    rsa: Leaf = field(init=False)
    ec: Leaf = field(init=False)

    def issue(
        self, public_key: PublicKey, common_name: str, *, organ_code: str | None = None, days: int = 365
    ) -> x509.Certificate:
        """A signing certificate (digitalSignature + nonRepudiation) from the Issuing CA."""
        return _certificate(
            _name(common_name, organ_code), public_key, self.issuing.subject, self.issuing_key, ca=False, days=days
        )

    def leaf(self, kind: str, common_name: str, stem: str) -> Leaf:
        key: PrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if kind == "ec"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        cert = self.issue(key.public_key(), common_name, organ_code=ORGAN_CODE)
        return Leaf(
            key,
            cert,
            write_key(self.directory / f"{stem}.key.pem", key),
            write_certs(self.directory / f"{stem}.cert.pem", cert),
        )


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFixture:
    directory = tmp_path_factory.mktemp("test-ca")
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name("Liên thông Test Root CA")
    root = _certificate(root_name, root_key.public_key(), root_name, root_key, ca=True, days=3650)
    issuing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuing = _certificate(
        _name("Liên thông Test Issuing CA"), issuing_key.public_key(), root_name, root_key, ca=True, days=3650
    )
    ca = CaFixture(
        directory,
        root,
        root_key,
        issuing,
        issuing_key,
        write_certs(directory / "root.pem", root),
        write_certs(directory / "chain.pem", issuing),
    )
    ca.rsa = ca.leaf("rsa", "Sở Tài chính tỉnh Nghệ An", "rsa")
    ca.ec = ca.leaf("ec", "Sở Tài chính tỉnh Nghệ An (EC)", "ec")
    return ca


# --- SoftHSM2 -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftHsmToken:
    """A SoftHSM2 token with keys generated on it. ``module`` is resolved (see the module notes)."""

    module: Path
    token_label: str
    pin: str
    so_pin: str
    rsa_label: str
    ec_label: str
    rsa_cert: Path  # the certificate of ``rsa_label`` as a file (also on the token, same label)
    ec_cert: Path
    chain: Path  # the Issuing CA
    conf: Path


def find_softhsm_module() -> Path | None:
    configured = os.environ.get("SOFTHSM2_MODULE")
    for candidate in (configured, *SOFTHSM_MODULES) if configured else SOFTHSM_MODULES:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def _generate_on_token(session: object, kind: str, label: str, key_id: bytes) -> PublicKey:
    """Generate a key pair on the token; return its public key as a cryptography object."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, MechanismFlag
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    assert isinstance(session, pkcs11.Session)
    capabilities = MechanismFlag.SIGN | MechanismFlag.VERIFY
    private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
    if kind == "rsa":
        public, _ = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=key_id,
            label=label,
            store=True,
            capabilities=capabilities,
            private_template=private_template,
        )
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"), int.from_bytes(public[Attribute.MODULUS], "big")
        )
        return numbers.public_key()
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
    )
    public, _ = params.generate_keypair(
        id=key_id, label=label, store=True, capabilities=capabilities, private_template=private_template
    )
    loaded = serialization.load_der_public_key(encode_ec_public_key(public))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    return loaded


def _store_certificate(session: object, label: str, key_id: bytes, cert: x509.Certificate) -> None:
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    assert isinstance(session, pkcs11.Session)
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
        }
    )


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFixture) -> Iterator[SoftHsmToken]:
    module = find_softhsm_module()
    require(module is not None, f"SoftHSM2 not installed (libsofthsm2.so not in {', '.join(SOFTHSM_MODULES)})")
    util = shutil.which("softhsm2-util")
    require(util is not None, "softhsm2-util not found (install softhsm2)")
    assert module is not None
    assert util is not None

    directory = tmp_path_factory.mktemp("softhsm")
    tokens = directory / "tokens"
    tokens.mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    token = SoftHsmToken(
        module=module,
        token_label="lienthong-test",
        pin="1234",
        so_pin="12345678",
        rsa_label="org-seal",
        ec_label="org-seal-ec",
        rsa_cert=directory / "org-seal.cert.pem",
        ec_cert=directory / "org-seal-ec.cert.pem",
        chain=test_ca.chain_path,
        conf=conf,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        init = ["--init-token", "--free", "--label", token.token_label, "--so-pin", token.so_pin, "--pin", token.pin]
        subprocess.run([util, *init], check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)})
        import pkcs11

        lib = pkcs11.lib(str(module))
        hsm = lib.get_token(token_label=token.token_label)
        with hsm.open(rw=True, user_pin=token.pin) as session:
            for kind, label, key_id, path in (
                ("rsa", token.rsa_label, b"\x01", token.rsa_cert),
                ("ec", token.ec_label, b"\x02", token.ec_cert),
            ):
                public = _generate_on_token(session, kind, label, key_id)
                cert = test_ca.issue(public, f"Sở Tài chính (token, {kind.upper()})", organ_code=ORGAN_CODE)
                _store_certificate(session, label, key_id, cert)
                write_certs(path, cert)
        yield token
