"""Key loading: PEM, PKCS#12 and a real SoftHSM2 token; the key cache; the pyHanko and cryptography adapters."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12

from signing import keys
from signing._private.pyhanko_signer import KeySigner, pyhanko_signer
from signing.errors import KeyLoadError, PassphraseError, SignError
from signing.keys import (
    KeyCache,
    KeyReference,
    Passphrase,
    Pkcs11Key,
    SignatureAlgorithm,
    SigningKey,
    SoftwareKey,
    as_cryptography_private_key,
    load_pem,
    load_pkcs11,
    load_pkcs12,
)
from tests.signing.fixtures import CaFixture, Leaf, SoftHsmToken, write_certs, write_key

SECRET = "mật khẩu rất bí mật 42"
DATA = "Báo cáo tài chính tháng 10/2026".encode()


def verify(cert: x509.Certificate, signature: bytes, data: bytes = DATA) -> None:
    """Raises InvalidSignature unless ``signature`` is the certificate holder's SHA-256 signature of ``data``."""
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def leaf(test_ca: CaFixture, kind: str) -> Leaf:
    return test_ca.rsa if kind == "rsa" else test_ca.ec


# --- PEM ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "algorithm"), [("rsa", SignatureAlgorithm.RSA_SHA256), ("ec", SignatureAlgorithm.ECDSA_SHA256)]
)
def test_pem_key_signs_what_its_certificate_verifies(
    test_ca: CaFixture, kind: str, algorithm: SignatureAlgorithm
) -> None:
    material = leaf(test_ca, kind)
    key = load_pem(material.key_path, material.cert_path, test_ca.chain_path, cache=None)
    assert isinstance(key, SoftwareKey)
    assert key.algorithm is algorithm
    assert key.certificate == material.cert
    assert key.chain == (test_ca.issuing,)
    verify(key.certificate, key.sign(DATA))
    assert "PEM file" in key.describe()
    assert "Sở Tài chính" in key.describe()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_sign_digest_signs_a_precomputed_sha256(test_ca: CaFixture, kind: str) -> None:
    key = load_pem(leaf(test_ca, kind).key_path, leaf(test_ca, kind).cert_path, cache=None)
    verify(key.certificate, key.sign_digest(_sha256(DATA)))
    with pytest.raises(SignError, match="32-byte"):
        key.sign_digest(b"too short")


def test_algorithm_names() -> None:
    assert SignatureAlgorithm.RSA_SHA256.xmldsig_uri == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert SignatureAlgorithm.ECDSA_SHA256.xmldsig_uri == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    assert SignatureAlgorithm.RSA_SHA256.pyhanko_mechanism == "sha256_rsa"
    assert SignatureAlgorithm.ECDSA_SHA256.pyhanko_mechanism == "sha256_ecdsa"


@pytest.fixture
def encrypted_key(test_ca: CaFixture, tmp_path: Path) -> Path:
    return write_key(tmp_path / "encrypted.key.pem", test_ca.rsa.key, SECRET.encode())


def test_encrypted_pem_with_passphrase_from_env(
    test_ca: CaFixture, encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIENTHONG_TEST_PASSPHRASE", SECRET)
    key = load_pem(encrypted_key, test_ca.rsa.cert_path, passphrase=Passphrase.from_env("LIENTHONG_TEST_PASSPHRASE"))
    verify(key.certificate, key.sign(DATA))


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_encrypted_pem_with_passphrase_from_file(
    test_ca: CaFixture, encrypted_key: Path, tmp_path: Path, ending: str
) -> None:
    secret_file = tmp_path / "passphrase"
    secret_file.write_text(SECRET + ending, encoding="utf-8")
    secret_file.chmod(0o600)
    key = load_pem(encrypted_key, test_ca.rsa.cert_path, passphrase=Passphrase.from_file(secret_file), cache=None)
    verify(key.certificate, key.sign(DATA))


def test_wrong_passphrase_names_the_file_not_the_passphrase(test_ca: CaFixture, encrypted_key: Path) -> None:
    wrong = "đoán-sai-123"
    with pytest.raises(PassphraseError) as caught:
        load_pem(encrypted_key, test_ca.rsa.cert_path, passphrase=Passphrase.literal(wrong), cache=None)
    message = str(caught.value)
    assert str(encrypted_key) in message
    assert wrong not in message
    assert SECRET not in message


def test_encrypted_pem_without_passphrase(test_ca: CaFixture, encrypted_key: Path) -> None:
    with pytest.raises(PassphraseError, match="is encrypted"):
        load_pem(encrypted_key, test_ca.rsa.cert_path, cache=None)


def test_passphrase_for_an_unencrypted_key_is_not_needed(test_ca: CaFixture) -> None:
    key = load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, passphrase=Passphrase.literal("x"), cache=None)
    verify(key.certificate, key.sign(DATA))


def test_certificate_of_another_key_is_refused_naming_both_files(test_ca: CaFixture) -> None:
    with pytest.raises(KeyLoadError) as caught:
        load_pem(test_ca.rsa.key_path, test_ca.ec.cert_path, cache=None)
    assert str(test_ca.rsa.key_path) in str(caught.value)
    assert str(test_ca.ec.cert_path) in str(caught.value)


def test_full_chain_certificate_file(test_ca: CaFixture, tmp_path: Path) -> None:
    fullchain = write_certs(tmp_path / "fullchain.pem", test_ca.issuing, test_ca.rsa.cert, test_ca.root)
    key = load_pem(test_ca.rsa.key_path, fullchain, cache=None)
    assert key.certificate == test_ca.rsa.cert
    assert key.chain == (test_ca.issuing, test_ca.root)


def test_weak_or_unsupported_keys_are_refused(test_ca: CaFixture, tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = test_ca.issue(weak.public_key(), "Weak")
    with pytest.raises(KeyLoadError, match="at least 2048"):
        load_pem(write_key(tmp_path / "weak.pem", weak), write_certs(tmp_path / "weak.crt", cert), cache=None)
    p384 = ec.generate_private_key(ec.SECP384R1())
    cert = test_ca.issue(p384.public_key(), "P-384")
    with pytest.raises(KeyLoadError, match="P-256"):
        load_pem(write_key(tmp_path / "p384.pem", p384), write_certs(tmp_path / "p384.crt", cert), cache=None)


def test_missing_files_are_named(test_ca: CaFixture, tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match=r"missing\.pem"):
        load_pem(tmp_path / "missing.pem", test_ca.rsa.cert_path, cache=None)
    with pytest.raises(KeyLoadError, match=r"missing\.crt"):
        load_pem(test_ca.rsa.key_path, tmp_path / "missing.crt", cache=None)


# --- passphrases ----------------------------------------------------------------------------------------


def test_passphrase_never_shows_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_TEST_PASSPHRASE", SECRET)
    for passphrase in (Passphrase.literal(SECRET), Passphrase.from_env("LIENTHONG_TEST_PASSPHRASE")):
        assert SECRET not in repr(passphrase)
        assert SECRET not in str(passphrase)
        assert passphrase.reveal() == SECRET.encode()
    with pytest.raises(TypeError):
        pickle.dumps(Passphrase.literal(SECRET))


def test_passphrase_sources_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIENTHONG_UNSET", raising=False)
    with pytest.raises(PassphraseError, match="LIENTHONG_UNSET is not set"):
        Passphrase.from_env("LIENTHONG_UNSET").reveal()
    monkeypatch.setenv("LIENTHONG_EMPTY", "")
    with pytest.raises(PassphraseError, match="is empty"):
        Passphrase.from_env("LIENTHONG_EMPTY").reveal()
    with pytest.raises(PassphraseError, match="nowhere"):
        Passphrase.from_file(tmp_path / "nowhere").reveal()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(PassphraseError, match="is empty"):
        Passphrase.from_file(tmp_path / "empty").reveal()


def test_passphrase_file_loses_only_one_newline(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b" secret \n\n")
    path.chmod(0o600)
    assert Passphrase.from_file(path).reveal() == b" secret \n"


def test_world_readable_passphrase_file_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pass"
    path.write_text(SECRET)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="signing.keys"):
        assert Passphrase.from_file(path).reveal() == SECRET.encode()
    assert "readable by every user" in caplog.text
    assert SECRET not in caplog.text


# --- PKCS#12 --------------------------------------------------------------------------------------------


@pytest.fixture
def p12_file(test_ca: CaFixture, tmp_path: Path) -> Path:
    data = pkcs12.serialize_key_and_certificates(
        b"org-seal",
        test_ca.ec.key,
        test_ca.ec.cert,
        [test_ca.root, test_ca.issuing],
        serialization.BestAvailableEncryption(SECRET.encode()),
    )
    path = tmp_path / "org.p12"
    path.write_bytes(data)
    return path


def test_pkcs12_with_chain(test_ca: CaFixture, p12_file: Path) -> None:
    key = load_pkcs12(p12_file, Passphrase.literal(SECRET), cache=None)
    assert key.certificate == test_ca.ec.cert
    assert key.chain == (test_ca.issuing, test_ca.root)  # issuer first, whatever the file's order
    assert key.algorithm is SignatureAlgorithm.ECDSA_SHA256
    verify(key.certificate, key.sign(DATA))
    assert "PKCS#12 file" in key.describe()


def test_pkcs12_wrong_passphrase(p12_file: Path) -> None:
    with pytest.raises(PassphraseError) as caught:
        load_pkcs12(p12_file, Passphrase.literal("sai"), cache=None)
    assert str(p12_file) in str(caught.value)
    assert "sai" not in str(caught.value).replace(str(p12_file), "")


def test_not_a_pkcs12_file(test_ca: CaFixture) -> None:
    with pytest.raises(KeyLoadError, match="not a PKCS#12 file") as caught:
        load_pkcs12(test_ca.rsa.cert_path, Passphrase.literal("x"), cache=None)
    assert not isinstance(caught.value, PassphraseError)


# --- the cache ------------------------------------------------------------------------------------------


def test_cache_loads_a_key_once_whatever_the_path_spelling_or_passphrase_source(
    test_ca: CaFixture, encrypted_key: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = KeyCache()
    first = load_pem(encrypted_key, test_ca.rsa.cert_path, passphrase=Passphrase.literal(SECRET), cache=cache)
    monkeypatch.chdir(encrypted_key.parent)
    monkeypatch.setenv("LIENTHONG_TEST_PASSPHRASE", SECRET)
    again = load_pem(
        Path(encrypted_key.name),
        test_ca.rsa.cert_path,
        passphrase=Passphrase.from_env("LIENTHONG_TEST_PASSPHRASE"),
        cache=cache,
    )
    assert again is first
    assert cache.loads == 1
    assert len(cache) == 1
    assert KeyReference.pem(Path(encrypted_key.name), test_ca.rsa.cert_path) in cache


def test_cache_reloads_a_key_replaced_on_disk(test_ca: CaFixture, tmp_path: Path) -> None:
    cache = KeyCache()
    key_path = write_key(tmp_path / "k.pem", test_ca.rsa.key)
    cert_path = write_certs(tmp_path / "c.pem", test_ca.rsa.cert)
    first = load_pem(key_path, cert_path, cache=cache)
    assert load_pem(key_path, cert_path, cache=cache) is first
    write_key(key_path, test_ca.ec.key)  # renewal: new key and certificate under the same names
    write_certs(cert_path, test_ca.ec.cert)
    os.utime(key_path, ns=(1, 1))  # a distinct mtime even on coarse-grained file systems
    renewed = load_pem(key_path, cert_path, cache=cache)
    assert renewed is not first
    assert renewed.certificate == test_ca.ec.cert
    assert cache.loads == 2


def test_process_wide_cache_is_the_default(test_ca: CaFixture) -> None:
    ref = KeyReference.pem(test_ca.ec.key_path, test_ca.ec.cert_path)
    keys.KEYS.forget(ref)
    first = load_pem(test_ca.ec.key_path, test_ca.ec.cert_path)
    assert load_pem(test_ca.ec.key_path, test_ca.ec.cert_path) is first
    assert ref in keys.KEYS
    keys.KEYS.forget(ref)


# --- PKCS#11 (SoftHSM2) ---------------------------------------------------------------------------------


@pytest.fixture
def pin(softhsm_token: SoftHsmToken) -> Passphrase:
    return Passphrase.literal(softhsm_token.pin)


@pytest.fixture
def no_token_sessions() -> Iterator[None]:
    """Every test starts and ends without an open session on the token (and closes what it opened)."""
    assert not keys._connections, "a previous test left a token session open"
    yield
    leftover = list(keys._connections.values())
    for connection in leftover:
        connection.close()
    keys._connections.clear()
    assert not leftover, "the test left a token session open"


@pytest.fixture
def count_sessions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened: list[int] = []
    real = keys._open_session

    def counting(token: object, pin: str | None) -> object:
        opened.append(1)
        return real(token, pin)  # type: ignore[arg-type]

    monkeypatch.setattr(keys, "_open_session", counting)
    return opened


uses_token = pytest.mark.usefixtures("no_token_sessions")


def token_key(token: SoftHsmToken, pin: Passphrase, kind: str, **kwargs: object) -> Pkcs11Key:
    label = token.rsa_label if kind == "rsa" else token.ec_label
    return load_pkcs11(token.module, token.token_label, label, pin, cache=None, **kwargs)  # type: ignore[arg-type]


@uses_token
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_token_key_signs_what_its_certificate_verifies(softhsm_token: SoftHsmToken, pin: Passphrase, kind: str) -> None:
    cert_file = softhsm_token.rsa_cert if kind == "rsa" else softhsm_token.ec_cert
    expected = x509.load_pem_x509_certificate(cert_file.read_bytes())
    with token_key(softhsm_token, pin, kind, chain=softhsm_token.chain) as key:
        assert key.certificate == expected  # read from the token, same label
        assert len(key.chain) == 1
        signature = key.sign(DATA)
        verify(expected, signature)
        verify(expected, key.sign_digest(_sha256(DATA)))
        assert "lienthong-test" in key.describe()
        assert softhsm_token.pin not in key.describe()
    assert key.closed
    with pytest.raises(SignError, match="closed"):
        key.sign(DATA)


@uses_token
def test_token_ecdsa_signature_is_der(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with token_key(softhsm_token, pin, "ec", cert=softhsm_token.ec_cert) as key:
        assert key.algorithm is SignatureAlgorithm.ECDSA_SHA256
        signature = key.sign(DATA)
        r, s = decode_dss_signature(signature)
        assert r > 0
        assert s > 0
        public = key.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, DATA, ec.ECDSA(hashes.SHA256()))
        digest = _sha256(DATA)
        public.verify(key.sign_digest(digest), digest, ec.ECDSA(Prehashed(hashes.SHA256())))


@uses_token
def test_wrong_pin(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(PassphraseError, match="wrong PIN") as caught:
        token_key(softhsm_token, Passphrase.literal("9999"), "rsa")
    assert "9999" not in str(caught.value)
    assert "lienthong-test" in str(caught.value)


@uses_token
def test_wrong_pin_for_a_second_key_on_an_open_token(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with token_key(softhsm_token, pin, "rsa"), pytest.raises(PassphraseError, match="wrong PIN"):
        token_key(softhsm_token, Passphrase.literal("9999"), "ec")


@uses_token
def test_unknown_token_lists_the_tokens_present(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with pytest.raises(KeyLoadError, match="no PKCS#11 token labelled 'nope'") as caught:
        load_pkcs11(softhsm_token.module, "nope", softhsm_token.rsa_label, pin, cache=None)
    assert "'lienthong-test'" in str(caught.value)


@uses_token
def test_unknown_key_lists_the_keys_present(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with pytest.raises(KeyLoadError, match="no private key labelled 'nope'") as caught:
        load_pkcs11(softhsm_token.module, softhsm_token.token_label, "nope", pin, cache=None)
    assert "'org-seal'" in str(caught.value)
    assert "'org-seal-ec'" in str(caught.value)


@uses_token
def test_missing_module(softhsm_token: SoftHsmToken, pin: Passphrase, tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="not found"):
        load_pkcs11(tmp_path / "libnothing.so", softhsm_token.token_label, "org-seal", pin, cache=None)


@uses_token
def test_token_key_with_a_foreign_certificate_is_refused(
    softhsm_token: SoftHsmToken, pin: Passphrase, test_ca: CaFixture
) -> None:
    with pytest.raises(KeyLoadError, match="does not belong"):
        token_key(softhsm_token, pin, "rsa", cert=test_ca.rsa.cert_path)
    with pytest.raises(KeyLoadError, match="EC public key"):
        token_key(softhsm_token, pin, "rsa", cert=test_ca.ec.cert_path)


@uses_token
def test_token_key_is_loaded_once_with_one_session(
    softhsm_token: SoftHsmToken, pin: Passphrase, count_sessions: list[int]
) -> None:
    cache = KeyCache()
    args = (softhsm_token.module, softhsm_token.token_label)
    first = load_pkcs11(*args, softhsm_token.rsa_label, pin, cache=cache)
    assert len(count_sessions) == 1
    again = load_pkcs11(*args, softhsm_token.rsa_label, Passphrase.literal(softhsm_token.pin), cache=cache)
    assert again is first
    assert len(count_sessions) == 1
    assert cache.loads == 1
    # a second key on the same token shares the logged-in session
    ec_key = load_pkcs11(*args, softhsm_token.ec_label, pin, cache=cache)
    assert len(count_sessions) == 1
    # closing one key keeps the other working (a logout would end every session of the process)
    ec_key.close()
    verify(first.certificate, first.sign(DATA))
    # a closed key is loaded again on the next lookup
    assert load_pkcs11(*args, softhsm_token.ec_label, pin, cache=cache) is not ec_key
    for key in (first, cache.load(KeyReference.pkcs11(*args, softhsm_token.ec_label), pin)):
        key.close()


@uses_token
def test_token_session_lost_is_reopened(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with token_key(softhsm_token, pin, "rsa") as key:
        connection = key._connection
        assert connection is not None
        assert connection.session is not None
        connection.session.close()  # what an HSM restart or a re-plugged token looks like from here
        verify(key.certificate, key.sign(DATA))
        assert connection.generation == 2


@uses_token
def test_token_key_is_thread_safe(softhsm_token: SoftHsmToken, pin: Passphrase) -> None:
    with token_key(softhsm_token, pin, "rsa") as rsa_key, token_key(softhsm_token, pin, "ec") as ec_key:
        failures: list[BaseException] = []

        def work(key: SigningKey, n: int) -> None:
            try:
                for i in range(25):
                    data = f"{n}-{i}".encode()
                    verify(key.certificate, key.sign(data), data)
            except BaseException as e:  # report in the main thread
                failures.append(e)

        threads = [threading.Thread(target=work, args=(k, n)) for n in range(4) for k in (rsa_key, ec_key)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures


# --- pyHanko --------------------------------------------------------------------------------------------


def _minimal_pdf() -> bytes:
    from node.samples import sample_pdf

    return sample_pdf("Bao cao")


KEY_KINDS = ["pem-rsa", "pem-ec", "token-rsa", "token-ec"]


@pytest.fixture(params=KEY_KINDS)
def any_key(request: pytest.FixtureRequest, test_ca: CaFixture) -> Iterator[SigningKey]:
    source, kind = request.param.split("-")
    if source == "pem":
        material = leaf(test_ca, kind)
        yield load_pem(material.key_path, material.cert_path, test_ca.chain_path, cache=None)
        return
    request.getfixturevalue("no_token_sessions")
    token: SoftHsmToken = request.getfixturevalue("softhsm_token")
    with token_key(token, Passphrase.literal(token.pin), kind, chain=token.chain) as key:
        yield key


def test_pyhanko_signs_a_pdf_that_validates(any_key: SigningKey, test_ca: CaFixture) -> None:
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    writer = IncrementalPdfFileWriter(io.BytesIO(_minimal_pdf()))
    signed = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Sig1"), signer=pyhanko_signer(any_key))
    reader = PdfFileReader(signed)
    (embedded,) = reader.embedded_signatures
    root = asn1_x509.Certificate.load(test_ca.root.public_bytes(serialization.Encoding.DER))
    status = validate_pdf_signature(embedded, ValidationContext(trust_roots=[root], allow_fetching=False))
    details = status.pretty_print_details()  # type: ignore[no-untyped-call]
    assert status.intact, details
    assert status.valid, details
    assert status.trusted, details
    expected = "ecdsa" if any_key.algorithm is SignatureAlgorithm.ECDSA_SHA256 else "rsassa_pkcs1v15"
    assert embedded.signer_info["signature_algorithm"].signature_algo == expected
    assert embedded.md_algorithm == "sha256"


def test_pyhanko_signer_refuses_other_digests_and_sizes_its_dry_run(test_ca: CaFixture) -> None:
    from pyhanko.sign.general import SigningError

    for material in (test_ca.rsa, test_ca.ec):
        key = load_pem(material.key_path, material.cert_path, cache=None)
        signer = KeySigner(key)
        with pytest.raises(SigningError, match="SHA-256 only"):
            asyncio.run(signer.async_sign_raw(b"data", "sha512"))
        dummy = asyncio.run(signer.async_sign_raw(b"data", "sha256", dry_run=True))
        real = asyncio.run(signer.async_sign_raw(b"data", "sha256"))
        assert len(dummy) >= max(len(real), 72 if material is test_ca.ec else 256)
        verify(key.certificate, real, b"data")


# --- cryptography adapter (signxml) ---------------------------------------------------------------------


@uses_token
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_token_key_as_a_cryptography_key_signs_xml_with_signxml(
    softhsm_token: SoftHsmToken, pin: Passphrase, kind: str
) -> None:
    from lxml import etree
    from signxml.algorithms import SignatureMethod
    from signxml.signer import XMLSigner
    from signxml.verifier import XMLVerifier

    with token_key(softhsm_token, pin, kind) as key:
        private = as_cryptography_private_key(key)
        assert isinstance(private, rsa.RSAPrivateKey if kind == "rsa" else ec.EllipticCurvePrivateKey)
        method = SignatureMethod.RSA_SHA256 if kind == "rsa" else SignatureMethod.ECDSA_SHA256
        cert_pem = key.certificate.public_bytes(serialization.Encoding.PEM)
        root = etree.fromstring(b"<report><period>2026-10</period></report>")
        signed = XMLSigner(signature_algorithm=method).sign(root, key=private, cert=cert_pem.decode())
        XMLVerifier().verify(signed, x509_cert=cert_pem.decode())
        if isinstance(private, rsa.RSAPrivateKey):
            with pytest.raises(UnsupportedAlgorithm):
                private.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        else:
            with pytest.raises(UnsupportedAlgorithm):
                private.sign(DATA, ec.ECDSA(hashes.SHA384()))
        with pytest.raises(TypeError):
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )


def test_software_key_as_a_cryptography_key_is_itself(test_ca: CaFixture) -> None:
    key = load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, cache=None)
    assert as_cryptography_private_key(key) is key.private_key


# --- the signing package end to end with a token --------------------------------------------------------


@uses_token
def test_token_signs_an_envelope_and_a_pdf(softhsm_token: SoftHsmToken, pin: Passphrase, test_ca: CaFixture) -> None:
    from node.samples import sample_monthly_report
    from schemas import build_message
    from signing.envelope import sign_envelope, verify_envelope
    from signing.pdf import PdfSigningKey, sign_pdf, verify_pdf
    from signing.report import Indication
    from signing.trust import TrustStore

    trust = TrustStore(roots=(test_ca.root,), allow_fetching=False)
    with token_key(softhsm_token, pin, "rsa", chain=softhsm_token.chain) as key:
        envelope = sign_envelope(build_message(sample_monthly_report()), key)
        result = verify_envelope(envelope, trust)
        assert result.report.indication is Indication.TOTAL_PASSED, result.report
        pdf = sign_pdf(_minimal_pdf(), PdfSigningKey(key))
        (report,) = verify_pdf("bao-cao.pdf", pdf, trust)
        assert report.indication is Indication.TOTAL_PASSED, report.reasons
