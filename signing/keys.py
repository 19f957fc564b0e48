"""Signing keys: PEM files, PKCS#12 files and PKCS#11 tokens, loaded once per process and reused.

Loading a key costs tens of milliseconds (parsing, passphrase KDFs, token login); a signature costs about
one. So keys are loaded once and kept: :func:`load_pem`, :func:`load_pkcs12` and :func:`load_pkcs11` go
through a process-wide :class:`KeyCache` keyed by a :class:`KeyReference` (which files, which token and
key label). Every key is a :class:`SigningKey`: its certificate, the chain to send along, and
``sign(data)`` = SHA-256 then RSA PKCS#1 v1.5 or ECDSA P-256 (DER-encoded ``(r, s)``).

Secrets. Passphrases and PINs come from a :class:`Passphrase`: an environment variable, a file, or (for
tests and programmatic use) a literal. There is deliberately no way to take one from the command line,
where every user of the machine could read it in the process list. A passphrase never appears in a
message, a ``repr`` or a log line; errors say where it came from (``environment variable X``), never what
it was.

Passphrase files. A file readable by every user is accepted with a logged warning, not refused: Docker
and Kubernetes mount secrets 0444/0644 by default inside the container's own mount namespace, and
refusing them would push operators towards worse places for the secret. ``chmod 600`` (or ``0400``)
silences the warning.

The cache. A :class:`KeyReference` names *which* key, not *how it was unlocked*: the passphrase source
is not part of it, so the same key configured with its passphrase from a file in one place and from the
environment in another is loaded once. Consequently a cache hit does not re-check the passphrase; the
passphrase protects the key at rest, and a process that already holds the unlocked key gains nothing
from asking again. Paths are resolved (symlinks followed) and the files' size, mtime and inode are
checked on every hit, so a key or certificate replaced on disk (renewal, Kubernetes secret rotation) is
reloaded on the next lookup without a restart. Use ``cache=None`` to bypass the cache.

PKCS#11. Login state in PKCS#11 belongs to the application and the token, not to a session: a second
login fails and a logout ends every session. So all keys on one token share one logged-in session
(with a lock around it: a PKCS#11 session must not be used by two threads at once); the session is
closed when the last key on it is closed. If the token drops the session (HSM restart, token
re-plugged) the next signature logs in again once, re-reading the PIN from its source. Load keys after
forking worker processes, not before: a PKCS#11 module must be initialised in the process that uses it.
SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is first initialised in the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import pkcs11
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import Buffer
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from signing.errors import KeyLoadError, PassphraseError, SignError
from signing.trust import load_certificates

__all__ = [
    "KEYS",
    "KeyCache",
    "KeyReference",
    "Passphrase",
    "Pkcs11Key",
    "SignatureAlgorithm",
    "SigningKey",
    "SoftwareKey",
    "as_cryptography_private_key",
    "load_key",
    "load_pem",
    "load_pkcs11",
    "load_pkcs12",
]

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
# DER DigestInfo header for SHA-256 (RFC 8017 §9.2 note 1): what CKM_RSA_PKCS signs ahead of the hash.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_PROBE = b"Lien thong: does this certificate belong to this key?"


# --- algorithms ---------------------------------------------------------------------------------------


class SignatureAlgorithm(Enum):
    """The two signature algorithms Liên thông signs with (SHA-256 always)."""

    RSA_SHA256 = "rsa-sha256"
    ECDSA_SHA256 = "ecdsa-sha256"

    @property
    def xmldsig_uri(self) -> str:
        """The ``ds:SignatureMethod/@Algorithm`` URI (RFC 9231)."""
        return f"http://www.w3.org/2001/04/xmldsig-more#{self.value}"

    @property
    def pyhanko_mechanism(self) -> str:
        """The asn1crypto ``SignedDigestAlgorithm`` name pyHanko uses in CMS ``SignerInfo``."""
        return "sha256_rsa" if self is SignatureAlgorithm.RSA_SHA256 else "sha256_ecdsa"

    @property
    def digest(self) -> str:
        return "sha256"


def algorithm_for(public_key: object, what: str) -> SignatureAlgorithm:
    """The algorithm a key of this type signs with, or KeyLoadError if Liên thông does not sign with it."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise KeyLoadError(f"{what}: RSA key of {public_key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return SignatureAlgorithm.RSA_SHA256
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise KeyLoadError(f"{what}: ECDSA key on {public_key.curve.name}; only P-256 (secp256r1) is used")
        return SignatureAlgorithm.ECDSA_SHA256
    raise KeyLoadError(f"{what}: unsupported key type {type(public_key).__name__}; use RSA-2048+ or ECDSA P-256")


# --- passphrases --------------------------------------------------------------------------------------


_warned_files: set[Path] = set()


class Passphrase:
    """Where a passphrase or PIN comes from; read only when a key is unlocked, never shown.

    ``from_env`` and ``from_file`` keep only the *source* and read it on :meth:`reveal` (so the secret is
    not held in memory longer than needed, and a rotated secret is picked up). ``literal`` holds the
    secret itself: for tests and callers that already have it.
    """

    __slots__ = ("_read", "source")

    def __init__(self, read: Callable[[], bytes], source: str) -> None:
        self._read = read
        self.source = source  # for messages: "environment variable LIENTHONG_PIN", never the secret

    @classmethod
    def from_env(cls, variable: str) -> Passphrase:
        """The value of environment variable ``variable`` (UTF-8); unset or empty is an error when read."""
        source = f"environment variable {variable}"

        def read() -> bytes:
            value = os.environ.get(variable)
            if value is None:
                raise PassphraseError(f"{source} is not set")
            if not value:
                raise PassphraseError(f"{source} is empty")
            return value.encode("utf-8")

        return cls(read, source)

    @classmethod
    def from_file(cls, path: Path | str) -> Passphrase:
        """The content of ``path`` without one trailing newline (``\\n`` or ``\\r\\n``).

        A file readable by every user is accepted with a warning (see the module notes); an empty one is
        an error.
        """
        path = Path(path)
        source = f"file {path}"

        def read() -> bytes:
            try:
                with path.open("rb") as f:
                    mode = os.fstat(f.fileno()).st_mode
                    if not stat.S_ISREG(mode):
                        raise PassphraseError(f"passphrase {source} is not a regular file")
                    data = f.read()
            except OSError as e:
                raise PassphraseError(f"cannot read passphrase {source}: {e.strerror}") from None
            if mode & stat.S_IROTH and path not in _warned_files:
                _warned_files.add(path)
                log.warning("passphrase file %s is readable by every user (mode %o); chmod o-r it", path, mode & 0o777)
            if data.endswith(b"\r\n"):
                data = data[:-2]
            elif data.endswith(b"\n"):
                data = data[:-1]
            if not data:
                raise PassphraseError(f"passphrase {source} is empty")
            return data

        return cls(read, source)

    @classmethod
    def literal(cls, secret: bytes | str) -> Passphrase:
        """A passphrase given by the caller (tests, API). Never build one from ``sys.argv``."""
        value = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        return cls(lambda: value, "the caller")

    def reveal(self) -> bytes:
        """The secret. Raises PassphraseError naming the source if it cannot be read."""
        return self._read()

    def __repr__(self) -> str:
        return f"Passphrase({self.source})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("a Passphrase cannot be pickled")


# --- keys ---------------------------------------------------------------------------------------------


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


class SigningKey(ABC):
    """A private key able to sign with SHA-256, with its certificate and the chain to send along.

    ``chain`` holds the intermediate certificates (never the leaf; the root may be there or not), leaf's
    issuer first. Implementations are thread-safe.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    def __init__(self, certificate: x509.Certificate, chain: Iterable[x509.Certificate], location: str) -> None:
        self.certificate = certificate
        self.chain = _clean_chain(certificate, chain)
        self.location = location  # where the key lives, for people: "PEM file /etc/…/key.pem"
        self._algorithm = algorithm_for(certificate.public_key(), f"certificate of {_common_name(certificate)}")

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self._algorithm

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """SHA-256 of ``data``, signed: PKCS#1 v1.5 signature bytes (RSA) or DER-encoded ``(r, s)`` (ECDSA)."""

    @abstractmethod
    def sign_digest(self, digest: bytes) -> bytes:
        """Like :meth:`sign` for a caller that already has the 32-byte SHA-256 ``digest`` of the data."""

    def describe(self) -> str:
        """Who signs and where the key lives, for logs and messages (never a secret)."""
        return f"{_common_name(self.certificate)} (serial {self.certificate.serial_number:x}), {self.location}"

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:  # noqa: B027 (a no-op unless the key holds something)
        """Release what the key holds (a token session). Software keys hold nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _check_digest(digest: bytes) -> None:
    if len(digest) != hashlib.sha256().digest_size:
        raise SignError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")


def _clean_chain(leaf: x509.Certificate, chain: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The chain without the leaf and duplicates, ordered issuer-first from the leaf where possible."""
    pool: list[x509.Certificate] = []
    for cert in chain:
        if cert != leaf and cert not in pool:
            pool.append(cert)
    ordered: list[x509.Certificate] = []
    current = leaf
    while True:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in ordered), None)
        if issuer is None or issuer == current:
            break
        ordered.append(issuer)
        current = issuer
    return (*ordered, *(c for c in pool if c not in ordered))


class SoftwareKey(SigningKey):
    """A private key held in this process's memory (loaded from a PEM or PKCS#12 file)."""

    def __init__(
        self,
        private_key: PrivateKey,
        certificate: x509.Certificate,
        chain: Iterable[x509.Certificate] = (),
        *,
        location: str = "memory",
        cert_source: str = "the certificate",
    ) -> None:
        if private_key.public_key() != certificate.public_key():
            raise KeyLoadError(f"{cert_source} does not belong to the private key in {location}")
        super().__init__(certificate, chain, location)
        self.private_key = private_key

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), hashes.SHA256())
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def sign_digest(self, digest: bytes) -> bytes:
        _check_digest(digest)
        key = self.private_key
        prehashed = asym_utils.Prehashed(hashes.SHA256())
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(digest, PKCS1v15(), prehashed)
        return key.sign(digest, ec.ECDSA(prehashed))


# --- loading files ------------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyLoadError(f"cannot read {what} {path}: {e.strerror}") from None


def _check_private_key(key: object, where: str) -> PrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyLoadError(f"{where}: unsupported key type {type(key).__name__}; use RSA-2048+ or ECDSA P-256")
    algorithm_for(key.public_key(), where)
    return key


def _leaf_and_rest(
    key: PrivateKey, certs: Sequence[x509.Certificate], key_where: str, cert_where: str
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The certificate of ``key`` among ``certs`` (a fullchain file is fine) and the others."""
    public = key.public_key()
    for i, cert in enumerate(certs):
        if cert.public_key() == public:
            return cert, [c for j, c in enumerate(certs) if j != i]
    raise KeyLoadError(f"the certificate in {cert_where} does not belong to the private key in {key_where}")


def _warn_validity(cert: x509.Certificate, where: str) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    if now > cert.not_valid_after_utc:
        log.warning("the certificate in %s expired on %s", where, cert.not_valid_after_utc.isoformat())
    elif now < cert.not_valid_before_utc:
        log.warning("the certificate in %s is valid only from %s", where, cert.not_valid_before_utc.isoformat())


def _looks_encrypted(data: bytes) -> bool:
    return b"ENCRYPTED" in data[:4096] or not data.lstrip().startswith(b"-----BEGIN")


def _load_pem(ref: KeyReference, passphrase: Passphrase | None) -> SoftwareKey:
    key_path, cert_path = ref.key, ref.cert
    assert key_path is not None
    assert cert_path is not None
    data = _read(key_path, "private key")
    load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    password = passphrase.reveal() if passphrase is not None else None
    try:
        try:
            private = load(data, password)
        except TypeError as e:
            if password is None:
                raise PassphraseError(
                    f"the private key {key_path} is encrypted: give its passphrase (environment variable or file)"
                ) from None
            log.debug("%s is not encrypted; the passphrase is not needed (%s)", key_path, e)
            private = load(data, None)
    except ValueError as e:
        if password is not None and _looks_encrypted(data):
            raise PassphraseError(f"wrong passphrase for the private key {key_path} (from {passphrase})") from None
        raise KeyLoadError(f"{key_path} does not hold a readable private key: {e}") from None
    except UnsupportedAlgorithm as e:
        raise KeyLoadError(f"{key_path}: unsupported key algorithm: {e}") from None
    private = _check_private_key(private, f"private key {key_path}")
    certs = load_certificates(cert_path)
    leaf, rest = _leaf_and_rest(private, certs, str(key_path), str(cert_path))
    chain = [*rest, *(load_certificates(ref.chain) if ref.chain is not None else [])]
    _warn_validity(leaf, str(cert_path))
    return SoftwareKey(private, leaf, chain, location=f"PEM file {key_path}", cert_source=str(cert_path))


def _load_pkcs12(ref: KeyReference, passphrase: Passphrase | None) -> SoftwareKey:
    path = ref.key
    assert path is not None
    if passphrase is None:
        raise PassphraseError(f"the PKCS#12 file {path} needs its passphrase (environment variable or file)")
    data = _read(path, "PKCS#12 file")
    secret = passphrase.reveal()
    try:
        private, cert, others = pkcs12.load_key_and_certificates(data, secret)
    except ValueError as e:
        try:
            asn1_pkcs12.Pfx.load(data)["auth_safe"].native  # noqa: B018  (parse, or raise)
        except (ValueError, TypeError, KeyError):
            raise KeyLoadError(f"{path} is not a PKCS#12 file: {e}") from None
        raise PassphraseError(f"wrong passphrase for the PKCS#12 file {path} (from {passphrase})") from None
    except UnsupportedAlgorithm as e:
        raise KeyLoadError(f"{path}: unsupported algorithm in the PKCS#12 file: {e}") from None
    if private is None:
        raise KeyLoadError(f"the PKCS#12 file {path} holds no private key")
    private = _check_private_key(private, f"PKCS#12 file {path}")
    certs = ([cert] if cert is not None else []) + list(others)
    if not certs:
        raise KeyLoadError(f"the PKCS#12 file {path} holds no certificate")
    leaf, rest = _leaf_and_rest(private, certs, str(path), str(path))
    _warn_validity(leaf, str(path))
    return SoftwareKey(private, leaf, rest, location=f"PKCS#12 file {path}", cert_source=str(path))


# --- PKCS#11 ------------------------------------------------------------------------------------------


_PIN_ERRORS: dict[type[Exception], str] = {
    pkcs11.PinIncorrect: "wrong PIN",
    pkcs11.PinInvalid: "invalid PIN",
    pkcs11.PinLenRange: "PIN of the wrong length",
    pkcs11.PinLocked: "PIN locked (too many wrong attempts)",
    pkcs11.PinExpired: "PIN expired",
}
_SESSION_LOST = (
    pkcs11.SessionHandleInvalid,
    pkcs11.SessionClosed,
    pkcs11.UserNotLoggedIn,
    pkcs11.DeviceRemoved,
    pkcs11.TokenNotPresent,
    pkcs11.KeyHandleInvalid,
    pkcs11.ObjectHandleInvalid,
)


def _open_session(token: pkcs11.Token, pin: str | None) -> pkcs11.Session:
    """Open a session, logged in when ``pin`` is given. (One place, so tests can count sessions.)"""
    return token.open(user_pin=pin) if pin is not None else token.open()


def _pkcs11_lib(module: Path) -> Any:
    if not module.is_file():
        raise KeyLoadError(f"PKCS#11 module {module} not found")
    try:
        return pkcs11.lib(str(module))
    except pkcs11.PKCS11Error as e:
        raise KeyLoadError(f"cannot load the PKCS#11 module {module}: {_pkcs11_message(e)}") from None


def _pkcs11_message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _find_token(lib: Any, module: Path, label: str) -> pkcs11.Token:
    tokens: list[pkcs11.Token] = []
    for slot in lib.get_slots(token_present=True):
        try:
            tokens.append(slot.get_token())
        except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
            continue
    found = [t for t in tokens if t.label == label]
    if not found:
        present = ", ".join(repr(t.label) for t in tokens) or "none"
        raise KeyLoadError(f"no PKCS#11 token labelled {label!r} in {module}; tokens present: {present}")
    if len(found) > 1:
        serials = ", ".join(t.serial.decode("ascii", "replace").strip() for t in found)
        raise KeyLoadError(f"several PKCS#11 tokens are labelled {label!r} in {module} (serials {serials})")
    return found[0]


def _pin_digest(salt: bytes, pin: bytes) -> bytes:
    return hashlib.sha256(salt + pin).digest()


class _TokenConnection:
    """The one logged-in session this process has on one token, shared by every key on it."""

    def __init__(self, module: Path, token_label: str, pin: Passphrase) -> None:
        self.module = module
        self.token_label = token_label
        self.lock = threading.RLock()  # around every use of the session
        self.refs = 0
        self.generation = 0  # bumped on every (re)login: keys re-find their handles
        self._pin = pin  # the source (env, file) is re-read on reconnection
        self._salt = secrets.token_bytes(16)
        self._pin_check = b""
        self.session: pkcs11.Session | None = None
        self.mechanisms: frozenset[Mechanism] = frozenset()
        self.logged_in_here = False
        self.connect()

    def connect(self) -> None:
        lib = _pkcs11_lib(self.module)
        token = _find_token(lib, self.module, self.token_label)
        secret = self._pin.reveal()
        try:
            pin = secret.decode("utf-8")
        except UnicodeDecodeError:
            raise PassphraseError(f"the PIN for token {self.token_label!r} ({self._pin}) is not UTF-8") from None
        where = f"token {self.token_label!r} in {self.module}"
        try:
            session = _open_session(token, pin)
            self.logged_in_here = True
        except pkcs11.UserAlreadyLoggedIn:
            # Other code in this process (pyHanko's own PKCS#11 signer, say) logged in already: the login
            # state is shared, so a session without login can sign. The PIN cannot be checked.
            log.warning("%s: already logged in by other code in this process; PIN not checked", where)
            session = _open_session(token, None)
            self.logged_in_here = False
        except tuple(_PIN_ERRORS) as e:
            raise PassphraseError(f"{_PIN_ERRORS[type(e)]} for {where} (PIN from {self._pin})") from None
        except pkcs11.UserPinNotInitialized:
            raise KeyLoadError(f"the user PIN of {where} was never set: initialise the token first") from None
        except pkcs11.PKCS11Error as e:
            raise KeyLoadError(f"cannot open a session on {where}: {_pkcs11_message(e)}") from None
        self.session = session
        self._pin_check = _pin_digest(self._salt, secret)
        try:
            self.mechanisms = frozenset(token.slot.get_mechanisms())
        except pkcs11.PKCS11Error:
            self.mechanisms = frozenset()
        self.generation += 1

    def reconnect(self) -> None:
        old, self.session = self.session, None
        if old is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):  # it is gone already: that is why we reconnect
                old.close()
        self.connect()

    def check_pin(self, pin: Passphrase) -> None:
        """A second key on an open connection: the PIN given for it must be the token's PIN too."""
        if not hmac.compare_digest(_pin_digest(self._salt, pin.reveal()), self._pin_check):
            raise PassphraseError(f"wrong PIN for token {self.token_label!r} in {self.module} (PIN from {pin})")

    def close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.close()
        except pkcs11.PKCS11Error as e:
            log.debug("closing the session on token %r: %s", self.token_label, _pkcs11_message(e))

    def private_key(self, label: str) -> pkcs11.PrivateKey:
        session = self._live()
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}))
        if len(found) == 1:
            return cast(pkcs11.PrivateKey, found[0])
        if found:
            raise KeyLoadError(f"several private keys are labelled {label!r} on token {self.token_label!r}")
        labels = sorted(
            {str(o[Attribute.LABEL]) for o in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})}, key=str
        )
        present = ", ".join(repr(x) for x in labels) or "none"
        raise KeyLoadError(f"no private key labelled {label!r} on token {self.token_label!r}; keys present: {present}")

    def certificate(self, label: str, key_id: bytes | None) -> x509.Certificate | None:
        """The certificate stored next to the key: same label, else same CKA_ID."""
        session = self._live()
        queries: list[dict[Attribute, Any]] = [{Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}]
        if key_id:
            queries.append({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})
        for query in queries:
            for obj in session.get_objects(query):
                try:
                    return x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
                except ValueError as e:
                    raise KeyLoadError(
                        f"the certificate labelled {label!r} on token {self.token_label!r} cannot be read: {e}"
                    ) from None
        return None

    def _live(self) -> pkcs11.Session:
        if self.session is None:
            raise SignError(f"the session on token {self.token_label!r} is closed")
        return self.session


_connections: dict[tuple[Path, str], _TokenConnection] = {}
_connections_lock = threading.Lock()


def _acquire(module: Path, token_label: str, pin: Passphrase) -> _TokenConnection:
    with _connections_lock:
        connection = _connections.get((module, token_label))
        if connection is not None and connection.session is not None:
            connection.check_pin(pin)
        else:
            connection = _TokenConnection(module, token_label, pin)
            _connections[(module, token_label)] = connection
        connection.refs += 1
        return connection


def _release(connection: _TokenConnection) -> None:
    with _connections_lock:
        connection.refs -= 1
        if connection.refs > 0:
            return
        with connection.lock:
            connection.close()
        if _connections.get((connection.module, connection.token_label)) is connection:
            del _connections[(connection.module, connection.token_label)]


class Pkcs11Key(SigningKey):
    """A private key that never leaves its PKCS#11 token (smart card, USB token, HSM, SoftHSM2)."""

    def __init__(
        self,
        connection: _TokenConnection,
        key_label: str,
        certificate: x509.Certificate,
        chain: Iterable[x509.Certificate] = (),
        *,
        handle: pkcs11.PrivateKey | None = None,
    ) -> None:
        super().__init__(
            certificate,
            chain,
            f"key {key_label!r} on PKCS#11 token {connection.token_label!r} (module {connection.module})",
        )
        self.key_label = key_label
        self.token_label = connection.token_label
        self._connection: _TokenConnection | None = connection
        self._generation = connection.generation
        self._handle = handle if handle is not None else connection.private_key(key_label)
        needed = (
            {Mechanism.ECDSA}
            if self.algorithm is SignatureAlgorithm.ECDSA_SHA256
            else {Mechanism.RSA_PKCS, Mechanism.SHA256_RSA_PKCS}
        )
        if connection.mechanisms and not needed & connection.mechanisms:
            names = " or ".join(sorted(m.name for m in needed))
            raise KeyLoadError(f"token {self.token_label!r} does not offer {names}")
        # The token hashes for RSA when it can (CKM_SHA256_RSA_PKCS); ECDSA is hashed here (CKM_ECDSA).
        self._token_hashes = Mechanism.SHA256_RSA_PKCS in connection.mechanisms or not connection.mechanisms

    @property
    def closed(self) -> bool:
        return self._connection is None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _release(connection)

    def sign(self, data: bytes) -> bytes:
        if self.algorithm is SignatureAlgorithm.RSA_SHA256 and self._token_hashes:
            return self._on_token(bytes(data), Mechanism.SHA256_RSA_PKCS)
        return self.sign_digest(hashlib.sha256(data).digest())

    def sign_digest(self, digest: bytes) -> bytes:
        _check_digest(digest)
        if self.algorithm is SignatureAlgorithm.RSA_SHA256:
            return self._on_token(_SHA256_DIGEST_INFO + digest, Mechanism.RSA_PKCS)
        raw = self._on_token(bytes(digest), Mechanism.ECDSA)
        half = len(raw) // 2
        return asym_utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def _on_token(self, payload: bytes, mechanism: Mechanism) -> bytes:
        connection = self._connection
        if connection is None:
            raise SignError(f"cannot sign: {self.describe()} is closed")
        with connection.lock:
            for attempt in (1, 2):
                try:
                    if self._generation != connection.generation:
                        self._handle = connection.private_key(self.key_label)
                        self._generation = connection.generation
                    return bytes(cast(pkcs11.SignMixin, self._handle).sign(payload, mechanism=mechanism))
                except _SESSION_LOST as e:
                    if attempt == 2:
                        raise SignError(f"{self.describe()}: the token is not available ({_pkcs11_message(e)})") from e
                    log.warning("%s: session lost (%s); logging in again", self.describe(), _pkcs11_message(e))
                    try:
                        connection.reconnect()
                    except KeyLoadError as again:
                        raise SignError(f"{self.describe()}: cannot log in again: {again}") from e
                except pkcs11.PKCS11Error as e:
                    raise SignError(f"{self.describe()}: the token refused to sign ({_pkcs11_message(e)})") from e
        raise AssertionError("unreachable")  # pragma: no cover


def _load_pkcs11(ref: KeyReference, pin: Passphrase | None) -> Pkcs11Key:
    module, token_label, key_label = ref.module, ref.token_label, ref.key_label
    assert module is not None
    assert token_label is not None
    assert key_label is not None
    if pin is None:
        raise PassphraseError(f"PKCS#11 token {token_label!r} needs its PIN (environment variable or file)")
    connection = _acquire(module, token_label, pin)
    try:
        with connection.lock:
            handle = connection.private_key(key_label)
            if ref.cert is not None:
                certs = load_certificates(ref.cert)
                cert_source = str(ref.cert)
            else:
                try:
                    key_id: bytes | None = bytes(handle[Attribute.ID])
                except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive):
                    key_id = None
                on_token = connection.certificate(key_label, key_id)
                if on_token is None:
                    raise KeyLoadError(
                        f"no certificate labelled {key_label!r} (or with the key's ID) on token {token_label!r}; "
                        "give the certificate file"
                    )
                certs = [on_token]
                cert_source = f"the certificate labelled {key_label!r} on token {token_label!r}"
            leaf = next((c for c in certs if not _is_ca(c)), certs[0])
            expected = KeyType.RSA if isinstance(leaf.public_key(), rsa.RSAPublicKey) else KeyType.EC
            if handle.key_type != expected:
                raise KeyLoadError(
                    f"{cert_source} holds an {expected.name} public key but key {key_label!r} on token "
                    f"{token_label!r} is {getattr(handle.key_type, 'name', handle.key_type)}"
                )
            chain = load_certificates(ref.chain) if ref.chain is not None else []
            key = Pkcs11Key(connection, key_label, leaf, [*(c for c in certs if c != leaf), *chain], handle=handle)
    except BaseException:
        _release(connection)
        raise
    try:
        _verify_pair(key, cert_source)
    except BaseException:
        key.close()
        raise
    _warn_validity(leaf, cert_source)
    return key


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _verify_pair(key: SigningKey, cert_source: str) -> None:
    """Sign a probe and check it with the certificate: the only test that works for every token."""
    try:
        signature = key.sign(_PROBE)
    except SignError as e:
        raise KeyLoadError(f"{key.describe()} cannot sign: {e}") from None
    public = key.certificate.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, _PROBE, PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, _PROBE, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise KeyLoadError(f"{cert_source} does not belong to {key.location}") from None


# --- references and the cache -------------------------------------------------------------------------


KeyKind = Literal["pem", "pkcs12", "pkcs11"]


def _absolute(path: Path | str | None) -> Path | None:
    return None if path is None else Path(path).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class KeyReference:
    """Which key: the files (PEM, PKCS#12) or the token and key label (PKCS#11). Paths are resolved.

    The passphrase source is deliberately not part of it (see the module notes): it says how to unlock
    the key, not which key it is.
    """

    kind: KeyKind
    key: Path | None = None  # the PEM private key, or the PKCS#12 file
    cert: Path | None = None
    chain: Path | None = None
    module: Path | None = None
    token_label: str | None = None
    key_label: str | None = None

    def __post_init__(self) -> None:
        for name in ("key", "cert", "chain", "module"):
            object.__setattr__(self, name, _absolute(getattr(self, name)))
        needed = {"pem": ("key", "cert"), "pkcs12": ("key",), "pkcs11": ("module", "token_label", "key_label")}
        missing = [n for n in needed[self.kind] if not getattr(self, n)]
        if missing:
            raise KeyLoadError(f"a {self.kind} key reference needs {', '.join(missing)}")

    @classmethod
    def pem(cls, key: Path | str, cert: Path | str, chain: Path | str | None = None) -> KeyReference:
        return cls("pem", key=Path(key), cert=Path(cert), chain=None if chain is None else Path(chain))

    @classmethod
    def pkcs12(cls, path: Path | str) -> KeyReference:
        return cls("pkcs12", key=Path(path))

    @classmethod
    def pkcs11(
        cls,
        module: Path | str,
        token_label: str,
        key_label: str,
        cert: Path | str | None = None,
        chain: Path | str | None = None,
    ) -> KeyReference:
        return cls(
            "pkcs11",
            module=Path(module),
            token_label=token_label,
            key_label=key_label,
            cert=None if cert is None else Path(cert),
            chain=None if chain is None else Path(chain),
        )

    @property
    def files(self) -> tuple[Path, ...]:
        """The files whose change means the key must be loaded again."""
        return tuple(p for p in (self.key, self.cert, self.chain) if p is not None)

    def describe(self) -> str:
        if self.kind == "pkcs11":
            return f"key {self.key_label!r} on PKCS#11 token {self.token_label!r} (module {self.module})"
        if self.kind == "pkcs12":
            return f"PKCS#12 file {self.key}"
        return f"PEM file {self.key} with certificate {self.cert}"


_LOADERS: dict[KeyKind, Callable[[KeyReference, Passphrase | None], SigningKey]] = {
    "pem": _load_pem,
    "pkcs12": _load_pkcs12,
    "pkcs11": _load_pkcs11,
}


def _stamp(ref: KeyReference) -> tuple[tuple[int, int, int] | None, ...]:
    stamps: list[tuple[int, int, int] | None] = []
    for path in ref.files:
        try:
            st = path.stat()
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class KeyCache:
    """Keys loaded once per process, by :class:`KeyReference`.

    A hit returns the very same key object, unless one of its files changed on disk (then the key is
    loaded again; the old object stays usable by whoever holds it) or it was closed. ``loads`` counts
    real loads, for tests and metrics.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[KeyReference, tuple[tuple[tuple[int, int, int] | None, ...], SigningKey]] = {}
        self.loads = 0

    def load(self, ref: KeyReference, passphrase: Passphrase | None = None) -> SigningKey:
        stamp = _stamp(ref)
        with self._lock:
            entry = self._entries.get(ref)
            if entry is not None and entry[0] == stamp and not entry[1].closed:
                return entry[1]
            key = _LOADERS[ref.kind](ref, passphrase)
            self._entries[ref] = (stamp, key)
            self.loads += 1
            log.info("loaded signing key %s", key.describe())
            return key

    def forget(self, ref: KeyReference) -> None:
        """Drop ``ref`` (the key object itself is not closed: others may hold it)."""
        with self._lock:
            self._entries.pop(ref, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        """Close every cached key (ending token sessions) and empty the cache: for shutdown."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for _, key in entries:
            key.close()

    def __contains__(self, ref: object) -> bool:
        return ref in self._entries

    def __len__(self) -> int:
        return len(self._entries)


KEYS = KeyCache()
"""The process-wide cache the ``load_*`` functions use by default."""

_DEFAULT: Any = object()


def load_key(
    ref: KeyReference, passphrase: Passphrase | None = None, *, cache: KeyCache | None = _DEFAULT
) -> SigningKey:
    """Load the key ``ref`` names (from ``cache``, the process-wide :data:`KEYS` by default; None: no cache)."""
    cache = KEYS if cache is _DEFAULT else cache
    if cache is None:
        return _LOADERS[ref.kind](ref, passphrase)
    return cache.load(ref, passphrase)


def load_pem(
    key: Path,
    cert: Path,
    chain: Path | None = None,
    passphrase: Passphrase | None = None,
    *,
    cache: KeyCache | None = _DEFAULT,
) -> SoftwareKey:
    """A private key (PEM or DER, PKCS#8 or traditional, encrypted or not) and its certificate file.

    ``cert`` may hold the whole chain (leaf first or not: the certificate of the key is found by its
    public key; the others join ``chain``).
    """
    return cast(SoftwareKey, load_key(KeyReference.pem(key, cert, chain), passphrase, cache=cache))


def load_pkcs12(path: Path, passphrase: Passphrase, *, cache: KeyCache | None = _DEFAULT) -> SoftwareKey:
    """A PKCS#12 (.p12/.pfx) file holding the key, its certificate and, optionally, the chain."""
    return cast(SoftwareKey, load_key(KeyReference.pkcs12(path), passphrase, cache=cache))


def load_pkcs11(
    module: Path,
    token_label: str,
    key_label: str,
    pin: Passphrase,
    cert: Path | None = None,
    chain: Path | None = None,
    *,
    cache: KeyCache | None = _DEFAULT,
) -> Pkcs11Key:
    """The private key labelled ``key_label`` on the token labelled ``token_label``.

    The certificate is the one stored on the token with the same label (or the same CKA_ID as the key),
    unless ``cert`` names a file. ``chain`` names a file of intermediate certificates.
    """
    ref = KeyReference.pkcs11(module, token_label, key_label, cert, chain)
    return cast(Pkcs11Key, load_key(ref, pin, cache=cache))


# --- for libraries that only take cryptography keys ---------------------------------------------------


def as_cryptography_private_key(key: SigningKey) -> PrivateKey:
    """``key`` as a cryptography private key object, for libraries that take nothing else (signxml).

    A software key is returned as is. Any other key is wrapped: ``sign`` accepts only SHA-256 (plain or
    ``Prehashed``) with PKCS#1 v1.5 (RSA) or ECDSA and delegates to the token; decrypting, key exchange
    and exporting the private key raise.
    """
    if isinstance(key, SoftwareKey):
        return key.private_key
    if key.algorithm is SignatureAlgorithm.RSA_SHA256:
        return _RsaKeyAdapter(key)
    return _EcKeyAdapter(key)


def _sha256_only(algorithm: object, key: SigningKey) -> bool:
    """True: data must be hashed by us; False: it is a SHA-256 digest already."""
    if isinstance(algorithm, hashes.SHA256):
        return True
    if isinstance(algorithm, asym_utils.Prehashed) and isinstance(
        getattr(algorithm, "_algorithm", None), hashes.SHA256
    ):
        return False
    raise UnsupportedAlgorithm(f"{key.describe()} signs with SHA-256 only, not {algorithm!r}")


class _SignOnly:
    """What both adapters refuse: a key on a token never leaves it, and copies are the same key."""

    _key: SigningKey

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise TypeError(f"{self._key.describe()}: the private key cannot be exported")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


class _RsaKeyAdapter(_SignOnly, rsa.RSAPrivateKey):
    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._public = cast(rsa.RSAPublicKey, key.certificate.public_key())

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: asym_utils.Prehashed | hashes.HashAlgorithm | asym_utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm(f"{self._key.describe()} signs with PKCS#1 v1.5 padding only")
        data = bytes(data)
        return self._key.sign(data) if _sha256_only(algorithm, self._key) else self._key.sign_digest(data)

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        raise UnsupportedAlgorithm(f"{self._key.describe()} is for signing only")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise TypeError(f"{self._key.describe()}: the private key cannot be exported")


class _EcKeyAdapter(_SignOnly, ec.EllipticCurvePrivateKey):
    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._public = cast(ec.EllipticCurvePublicKey, key.certificate.public_key())

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm(f"{self._key.describe()} signs with ECDSA only")
        payload = bytes(data)
        if _sha256_only(signature_algorithm.algorithm, self._key):
            return self._key.sign(payload)
        return self._key.sign_digest(payload)

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedAlgorithm(f"{self._key.describe()} is for signing only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise TypeError(f"{self._key.describe()}: the private key cannot be exported")
