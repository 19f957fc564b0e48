"""What a running node holds: settings, database, object store, keys, trust store, registry of peers.

One :class:`NodeRuntime` is made per process (``lienthong serve``) or per CLI command; the API, the workers
and the CLI all reach the node's state through it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from node._private.auth_failures import AuthFailureLimiter
from node.config import KeyConfig, NodeSettings, OrganisationConfig, RegisteredNode, read_public_key
from node.errors import ConfigError, SendError
from schemas import OrganCode, OrganEntry, OrganRegistry, is_valid_organ_code
from signing.keys import KEYS, KeyReference, Passphrase, SigningKey
from signing.timestamps import HttpTimestamper
from signing.trust import TrustStore
from storage.db import make_engine, session_factory, sync_committed

if TYPE_CHECKING:
    from adapters.httpsig import NodeKey
    from signing.pdf import PdfSigningKey
    from storage.auditlog import AuditLog
    from storage.checkpoint import NoteSigner
    from storage.witness import Witness


@dataclass(frozen=True)
class Peer:
    """A node this one knows: its id, Ed25519 public key, what it speaks for, where it can be reached."""

    node_id: str
    public_key: bytes
    patterns: tuple[str, ...] = ()
    url: str | None = None
    speaks_for_all: bool = False  # the upstream axis delivers for anyone

    def serves(self, code: str) -> bool:
        """True when this peer may speak for (and receives for) organisation ``code``."""
        if self.speaks_for_all:
            return True
        for pattern in self.patterns:
            if pattern.endswith("/*"):
                root = pattern[:-2]
                if code == root or root in _ancestors(code):
                    return True
            elif pattern == code:
                return True
        return False


@functools.lru_cache(maxsize=4096)
def _ancestors(code: str) -> tuple[str, ...]:
    if not is_valid_organ_code(code):
        return ()
    out: list[str] = []
    current: OrganCode | None = OrganCode.parse(code)
    while current is not None and (current := current.default_parent()) is not None:
        out.append(str(current))
    return tuple(out)


class NodeRuntime:
    def __init__(self, settings: NodeSettings, *, create: bool = True) -> None:
        from storage.objects import open_object_store

        self.settings = settings
        self.data_path = settings.data_path
        self.data_path.mkdir(parents=True, exist_ok=True)
        from storage.db import DatabaseConfigError

        try:
            self.engine = make_engine(settings.database)
            if create:
                from storage.migrate import upgrade

                upgrade(self.engine)
        except DatabaseConfigError as e:  # unreachable, refused, no such database: the operator's to fix
            raise ConfigError(f"database: {e}") from None
        self.sessions = session_factory(self.engine)
        # Set when a transaction that queued outbox rows commits (``mark_outbox``): the outbox worker wakes at
        # once instead of at its next poll, whichever thread queued the message.
        self.outbox_ready = threading.Event()
        self._held = threading.local()
        event.listen(self.sessions, "after_commit", self._after_commit)
        from storage.errors import ObjectStoreConfigError
        from storage.retention import RetentionPolicy

        try:
            retention = RetentionPolicy.from_config(settings.retention.model_dump())
            self.objects = open_object_store(settings.objects_url, retention)
        except ObjectStoreConfigError as e:
            raise ConfigError(f"object store: {e}") from None
        self._lock = threading.Lock()
        self._trust: TrustStore | None = None
        self._pdf_keys: dict[tuple[str, str], PdfSigningKey] = {}
        # the trust store's revocation snapshot last archived as evidence, and the object keys it got
        self.stored_evidence: tuple[tuple[tuple[bytes, ...], tuple[bytes, ...]], tuple[str, ...]] | None = None
        self.peers: dict[str, Peer] = {}
        base = settings.config_dir
        for node in settings.nodes:
            self.peers[node.id] = _peer(node, base)
        self.upstream: Peer | None = None
        if settings.upstream is not None:
            up = settings.upstream
            self.upstream = Peer(up.node_id, up.public_key_bytes(base), url=up.url, speaks_for_all=True)
            self.peers.setdefault(up.node_id, self.upstream)
        if create:
            # Now, outside any transaction: the log's head row is made on a connection of its own, which would
            # wait forever behind a session already holding SQLite's write lock.
            self.audit  # noqa: B018

    # -- database
    def _after_commit(self, session: Session) -> None:
        if session.info.pop("outbox", False):
            if getattr(self._held, "outbox", None) is not None:
                self._held.outbox = True
            else:
                self.outbox_ready.set()

    @contextmanager
    def outbox_held(self) -> Iterator[None]:
        """Within this block, this thread's commits wake the outbox once, at the end, not one by one.

        The inbox worker receives a batch in it: the automatic answers to the whole batch then leave in one
        request instead of one request each.
        """
        self._held.outbox = False
        try:
            yield
        finally:
            queued, self._held.outbox = self._held.outbox, None
            if queued:
                self.outbox_ready.set()

    @staticmethod
    def mark_outbox(session: Session) -> None:
        """Say that ``session`` queued outbox rows: the outbox worker is woken when it commits."""
        session.info["outbox"] = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed at the end, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @functools.cached_property
    def auth_failures(self) -> AuthFailureLimiter:
        """How many failed authentications per client the audit log takes (the rest are counted)."""
        return AuthFailureLimiter()

    def sync_committed(self) -> None:
        """Make what was committed so far survive a power loss: call it before promising it to anyone."""
        sync_committed(self.engine)

    # -- organisations and keys
    @functools.cached_property
    def organisations(self) -> dict[str, OrganisationConfig]:
        return {o.code: o for o in self.settings.organisations}

    def organisation(self, code: str) -> OrganisationConfig:
        try:
            return self.organisations[code]
        except KeyError:
            served = ", ".join(self.organisations) or "none"
            raise SendError(f"this node does not serve organisation {code} (it serves: {served})") from None

    def seal_key(self, code: str) -> SigningKey:
        return self.load_key(self.organisation(code).seal)

    def signer_key(self, code: str) -> SigningKey | None:
        signer = self.organisation(code).signer
        return None if signer is None else self.load_key(signer)

    def pdf_key(self, code: str, role: str) -> PdfSigningKey | None:
        """The organisation's seal (``role`` "seal") or signer key prepared once for PAdES, kept for reuse."""
        from signing.pdf import PdfSigningKey

        with self._lock:
            cached = self._pdf_keys.get((code, role))
        if cached is None:
            key = self.seal_key(code) if role == "seal" else self.signer_key(code)
            if key is None:
                return None
            cached = PdfSigningKey(key)
            with self._lock:
                self._pdf_keys[(code, role)] = cached
        return cached

    def load_key(self, config: KeyConfig) -> SigningKey:
        p = self.settings.path
        ref = KeyReference(
            config.kind,
            key=p(config.key) if config.key else None,
            cert=p(config.cert) if config.cert else None,
            chain=p(config.chain) if config.chain else None,
            module=p(config.module) if config.module else None,
            token_label=config.token_label,
            key_label=config.key_label,
        )
        passphrase = None
        if config.passphrase_file is not None:
            passphrase = Passphrase.from_file(p(config.passphrase_file))
        elif config.passphrase_env is not None:
            passphrase = Passphrase.from_env(config.passphrase_env)
        return KEYS.load(ref, passphrase)

    @property
    def trust(self) -> TrustStore:
        with self._lock:
            if self._trust is None:
                t = self.settings.trust
                if not t.roots:
                    raise ConfigError("trust.roots is empty: the node cannot verify any signature")
                registry = OrganRegistry(
                    OrganEntry(
                        code=OrganCode.parse(a.code),
                        name=a.name,
                        parent=OrganCode.parse(a.parent) if a.parent else None,
                        certificates=tuple(self.settings.path(c).read_bytes() for c in a.certificates),
                    )
                    for a in self.settings.agencies
                )
                self._trust = TrustStore.from_files(
                    [self.settings.path(r) for r in t.roots],
                    [self.settings.path(i) for i in t.intermediates],
                    revocation=t.revocation,
                    allow_fetching=t.allow_fetching,
                    fetch_issuers=t.fetch_issuers,
                    registry=registry if len(registry) else None,
                )
            return self._trust

    @functools.cached_property
    def long_term_trust(self) -> TrustStore:
        """The trust store the organisations' seals are made with at ``seal_level: B-LT``: the node's roots,
        insisting on revocation data for every certificate of the seal's chain, fetched from the addresses the
        node's own certificates name (whatever trust.allow_fetching says of the signatures it verifies). One
        store per node: what it fetched is reused for a while, not per seal."""
        return replace(self.trust, revocation="require", allow_fetching=True)

    @functools.cached_property
    def node_key(self) -> NodeKey:
        """The node's Ed25519 key: it signs every request to another node and every exchange answer."""
        from adapters.httpsig import NodeKey

        key_path = self.settings.node_key_path
        if not key_path.is_file():
            raise ConfigError(f"the node key {key_path} does not exist (run `lienthong init`, or set node_key)")
        return NodeKey.load(key_path, self.settings.node_id)

    @functools.cached_property
    def audit(self) -> AuditLog:
        """This node's append-only Merkle audit log (nhật ký kiểm toán), in its own database."""
        from storage.auditlog import AuditLog

        return AuditLog(self.engine)

    @property
    def log_origin(self) -> str:
        """The origin line of this node's checkpoints (C2SP tlog-checkpoint)."""
        return f"lienthong/{self.settings.node_id}"

    @functools.cached_property
    def log_signer(self) -> NoteSigner:
        """The node key as a C2SP note signer for the log's checkpoints (type 0x01, Ed25519)."""
        from storage.checkpoint import ED25519, NoteSigner

        return NoteSigner(self.log_origin, ED25519, self.node_key.private_key)

    def log_verifier_key(self, node_id: str) -> str | None:
        """The verifier key (vkey) of ``node_id``'s log, from the public key it is registered with."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from storage.checkpoint import ED25519, NoteVerifier

        public = self.public_key_of(node_id)
        if public is None:
            return None
        Ed25519PublicKey.from_public_bytes(public)  # refuses a malformed key before it is used
        return NoteVerifier(f"lienthong/{node_id}", ED25519, public).vkey()

    @functools.cached_property
    def witness(self) -> Witness:
        """This node as a witness of its peers' logs (cosignature/v1 with the node key)."""
        from storage.checkpoint import COSIGNATURE_V1, NoteSigner
        from storage.witness import Witness

        return Witness(
            self.engine,
            NoteSigner(f"lienthong-witness/{self.settings.node_id}", COSIGNATURE_V1, self.node_key.private_key),
        )

    @functools.cached_property
    def timestamper(self) -> HttpTimestamper | None:
        url = self.settings.timestamp_url
        return HttpTimestamper(url) if url else None

    # -- peers
    def peer(self, node_id: str) -> Peer | None:
        return self.peers.get(node_id)

    def public_key_of(self, node_id: str) -> bytes | None:
        peer = self.peers.get(node_id)
        return None if peer is None else peer.public_key

    def local_node_for(self, code: str) -> Peer | None:
        """The registered node (not the upstream axis) that receives for ``code``; the most specific wins."""
        exact = [p for p in self.peers.values() if not p.speaks_for_all and code in p.patterns]
        if exact:
            return exact[0]
        subtree = [p for p in self.peers.values() if not p.speaks_for_all and p.serves(code)]
        return subtree[0] if subtree else None

    def close(self) -> None:
        """Release the database; what was committed is made durable first (a CLI command's promise)."""
        self.sync_committed()
        self.engine.dispose()

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "role": self.settings.role,
            "organisations": list(self.organisations),
            "upstream": self.upstream.node_id if self.upstream else None,
            "database": self.engine.url.render_as_string(hide_password=True),
        }


def _peer(node: RegisteredNode, base: Path) -> Peer:
    return Peer(node.id, read_public_key(node.public_key, base), tuple(node.organisations), node.url)
