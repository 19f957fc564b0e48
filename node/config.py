"""Node configuration: one YAML file plus ``LIENTHONG_*`` environment variables (environment wins).

The same program runs in two roles (vai trò): ``agency`` (a node serving one or more organisations) and
``axis`` (trục: routes envelopes between the nodes registered with it, forwards to an upstream axis).
Relative paths in the file are read relative to the file's own directory, so a config can be moved together
with its data.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from node.errors import ConfigError
from schemas import is_valid_organ_code

Role = Literal["agency", "axis"]
SealLevel = Literal["B-T", "B-LT"]
NodeId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyConfig(_Strict):
    """Where an organisation's signing key is: PEM (key + cert), PKCS#12, or a PKCS#11 token."""

    kind: Literal["pem", "pkcs12", "pkcs11"]
    key: Path | None = None
    cert: Path | None = None
    chain: Path | None = None
    module: Path | None = None
    token_label: str | None = None
    key_label: str | None = None
    passphrase_file: Path | None = None
    passphrase_env: str | None = None


class OrganisationConfig(_Strict):
    """An organisation this agency node serves (cơ quan, đơn vị) and the keys it signs with."""

    code: str
    name: str
    seal: KeyConfig  # chữ ký số của cơ quan: envelope and the PDF's organisation signature
    signer: KeyConfig | None = None  # người có thẩm quyền: the PDF's personal signature, when the node signs it
    address: str = ""
    email: str = ""
    telephone: str = ""

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not is_valid_organ_code(value):
            raise ValueError(f"{value!r} is not an organisation code (mã định danh)")
        return value


class PeerConfig(_Strict):
    """Another node this one talks to: its URL, its node id and its Ed25519 public key."""

    url: str
    node_id: NodeId
    public_key: str  # base64 of the raw 32-byte Ed25519 key, or a path to a PEM public key

    def public_key_bytes(self, base: Path) -> bytes:
        return read_public_key(self.public_key, base)


class RegisteredNode(_Strict):
    """A node registered with an axis: which organisations it may speak for and receives for.

    ``organisations`` holds codes; ``code/*`` stands for that code and every unit below it (a child axis).
    """

    id: NodeId
    public_key: str
    organisations: tuple[str, ...] = ()
    url: str | None = None  # where the axis may push; without it the node pulls its inbox

    @field_validator("organisations")
    @classmethod
    def _codes(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            code = value.removesuffix("/*")
            if not is_valid_organ_code(code):
                raise ValueError(f"{value!r} is not an organisation code (or code/* for a subtree)")
        return values


class RegisteredAgency(_Strict):
    """An agency in the axis's registry (danh bạ): name, parent override and registered certificates."""

    code: str
    name: str
    parent: str | None = None
    certificates: tuple[Path, ...] = ()


class TrustConfig(_Strict):
    roots: tuple[Path, ...] = ()
    intermediates: tuple[Path, ...] = ()
    revocation: Literal["soft-fail", "hard-fail", "require"] = "soft-fail"
    allow_fetching: bool = True  # OCSP responses and CRLs, from certificates that chain to a root
    fetch_issuers: bool = False  # issuer certificates from the URL a certificate names: off (SSRF), list intermediates


class DeliveryConfig(_Strict):
    """Retries of the outbox (hộp thư đi) and polling of the inbox (hộp thư đến)."""

    poll_interval: float = Field(default=1.0, gt=0)
    initial_backoff: float = Field(default=1.0, gt=0)
    max_backoff: float = Field(default=300.0, gt=0)
    max_age: float = Field(
        default=48 * 3600.0,
        gt=0,
        description="seconds before a message goes to dead letter; on an axis, before an unfetched delivery expires",
    )
    answer_wait: float = Field(
        default=3600.0, gt=0, description="seconds after delivery to the axis without a 01/02 before asking it why"
    )
    answer_check_interval: float = Field(
        default=900.0, gt=0, description="seconds between two questions to the axis about one unanswered copy"
    )
    batch: int = Field(default=50, ge=1, le=1000)
    workers: int = Field(default=2, ge=1, le=32)


class RetentionConfig(_Strict):
    """How long archived objects are locked (write-once, object lock COMPLIANCE on S3), per document class.

    Classes the node uses: ``document``, ``status``, ``report`` (verification reports), ``evidence``
    (OCSP responses, CRLs).
    """

    default_days: int = Field(default=3650, ge=0, le=36_500)
    per_class: dict[str, int] = Field(default_factory=dict)


class NodeSettings(BaseSettings):
    """Everything a node needs to run; see docs/configuration in the README."""

    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", env_nested_delimiter="__", extra="forbid", frozen=True)

    role: Role
    node_id: NodeId
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=0, le=65535)
    data_dir: Path = Path("var")
    database_url: str | None = None
    object_store: str | None = None
    retention: RetentionConfig = RetentionConfig()
    node_key: Path | None = None
    trace_organ_id: str | None = None  # the code an axis writes into TraceHeader; agency: its first organisation
    organisations: tuple[OrganisationConfig, ...] = ()
    upstream: PeerConfig | None = None  # agency: its axis; axis: the parent axis
    nodes: tuple[RegisteredNode, ...] = ()
    agencies: tuple[RegisteredAgency, ...] = ()
    trust: TrustConfig = TrustConfig()
    timestamp_url: str | None = None
    seal_level: SealLevel = Field(
        default="B-T",
        description=(
            "the PAdES level of the organisation's seal on each sent PDF: B-T (timestamped; B-B without "
            "timestamp_url) or B-LT (also the OCSP responses and CRLs of the seal's chain and the TSA's, fetched "
            "when sealing and embedded, so the seal is checked without this node's evidence; needs timestamp_url)"
        ),
    )
    delivery: DeliveryConfig = DeliveryConfig()
    max_envelope_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_hops: int = Field(default=8, ge=1, le=64)
    checkpoint_interval: float = Field(default=300.0, gt=0, description="seconds between audit checkpoints")
    config_dir: Path = Path(".")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment, then secret files (``$LIENTHONG_SECRETS_DIR/lienthong_database_url`` …), then the YAML file
        return (env_settings, file_secret_settings, init_settings)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            from storage.db import DatabaseConfigError, check_database_url

            try:
                check_database_url(value)
            except DatabaseConfigError as e:
                raise ValueError(str(e)) from None
        return value

    @model_validator(mode="after")
    def _role_needs(self) -> NodeSettings:
        if self.role == "agency" and not self.organisations:
            raise ValueError("an agency node needs at least one entry in organisations")
        if self.role == "agency" and self.upstream is None:
            raise ValueError("an agency node needs upstream (its axis: url, node_id, public_key)")
        if self.trace_organ_id is not None and not is_valid_organ_code(self.trace_organ_id):
            raise ValueError(f"trace_organ_id {self.trace_organ_id!r} is not an organisation code")
        if self.role == "axis" and self.trace_organ_id is None:
            raise ValueError("an axis needs trace_organ_id: the organisation code it writes into TraceHeader")
        ids = [n.id for n in self.nodes]
        if len(ids) != len(set(ids)):
            raise ValueError("a node id is registered twice in nodes")
        return self

    @model_validator(mode="after")
    def _seal_level_needs(self) -> NodeSettings:
        if self.seal_level == "B-LT" and self.timestamp_url is None:
            raise ValueError("seal_level B-LT needs timestamp_url: B-LT is a timestamped seal with its validation data")
        return self

    # -- derived paths (relative ones are under the config file's directory)
    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.config_dir / p).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'node.db'}"

    @property
    def objects_url(self) -> str:
        return self.object_store or str(self.data_path / "objects")

    @property
    def node_key_path(self) -> Path:
        return self.path(self.node_key) if self.node_key else self.data_path / "node-key.pem"

    @property
    def trace_id(self) -> str:
        return self.trace_organ_id or self.organisations[0].code


def read_public_key(value: str, base: Path) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as base64 or as a path to a PEM file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    if value.strip().startswith("-----BEGIN") or not _looks_base64_key(value):
        path = Path(value) if Path(value).is_absolute() else base / value
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the public key {value!r}: {e}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{value}: not an Ed25519 public key")
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64decode(value)


def _looks_base64_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False


def load_settings(path: Path | str | None = None, **overrides: Any) -> NodeSettings:
    """Read the YAML file at ``path`` (or ``$LIENTHONG_CONFIG``), apply the environment, check everything.

    With ``$LIENTHONG_SECRETS_DIR`` (e.g. ``/run/secrets``), a file there named after a variable in lower case
    (``lienthong_database_url``, ``lienthong_object_store``) sets that field, so URLs holding passwords need
    not be in the YAML file or the environment; a variable that is set still wins.

    Errors name the file and the field that is wrong.
    """
    source = Path(path) if path is not None else _env_config()
    data: dict[str, Any] = {}
    if source is not None:
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read the configuration {source}: {e.strerror or e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{source} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"{source}: the top level must be a mapping of settings")
        data = dict(loaded or {})
        data.setdefault("config_dir", source.resolve().parent)
    data.update(overrides)
    secrets = os.environ.get("LIENTHONG_SECRETS_DIR")
    if secrets and not Path(secrets).is_dir():
        raise ConfigError(f"LIENTHONG_SECRETS_DIR={secrets} is not a directory")
    try:
        return NodeSettings(**data, _secrets_dir=secrets or None)
    except ValidationError as e:
        where = f" in {source}" if source else ""
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid configuration{where}: {problems}") from None


def _env_config() -> Path | None:
    value = os.environ.get("LIENTHONG_CONFIG")
    return Path(value) if value else None
