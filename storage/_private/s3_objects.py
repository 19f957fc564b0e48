"""S3 backend of the object store, through the ``minio`` client (MinIO, SeaweedFS, AWS S3).

Write-once is enforced by the server, not only by this code: the bucket must have object lock (hence
versioning), and every object is written with COMPLIANCE retention, which nobody — not even the root
account — can shorten or lift; a locked *version* cannot be deleted. S3 still lets anyone with write
access add a newer version or a delete marker under the same name, so reads do not trust the latest
version blindly: they pick the version whose bytes hash to the key (the original is always kept).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.credentials.providers import ChainedProvider, EnvAWSProvider, EnvMinioProvider
from minio.datatypes import Object
from minio.error import MinioException, S3Error
from minio.helpers import genheaders
from minio.retention import Retention

from storage.errors import (
    ObjectCorruptError,
    ObjectExistsError,
    ObjectLockError,
    ObjectNotFoundError,
    ObjectStoreConfigError,
    StorageError,
)
from storage.objects import ObjectInfo, ObjectRef, content_key, key_digest
from storage.retention import RetentionPolicy, check_document_class

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"})
_TRUE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
META_SHA256 = "x-amz-meta-sha256"
META_CLASS = "x-amz-meta-document-class"


def open_s3_store(url: str, retention: RetentionPolicy) -> S3ObjectStore:
    """``s3://ACCESS:SECRET@host[:port]/bucket[?secure=true|false&region=R&create_bucket=true|false]``.

    Credentials are percent-decoded; without them, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or
    ``MINIO_ACCESS_KEY``/``MINIO_SECRET_KEY`` from the environment are used. ``secure`` defaults to true.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        raise ObjectStoreConfigError("S3 URL needs a host: s3://ACCESS:SECRET@host:port/bucket")
    bucket = parts.path.strip("/")
    if not bucket or "/" in bucket:
        raise ObjectStoreConfigError(f"S3 URL must name exactly one bucket as its path, got {parts.path!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"secure", "region", "create_bucket"}
    if unknown:
        raise ObjectStoreConfigError(f"unknown S3 URL option(s): {', '.join(sorted(unknown))}")
    secure = _flag(options, "secure", default=True)
    create_bucket = _flag(options, "create_bucket", default=True)
    try:
        port = parts.port
    except ValueError as exc:
        raise ObjectStoreConfigError(f"bad port in S3 URL: {exc}") from exc
    endpoint = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # IPv6 literal
        endpoint = f"[{parts.hostname}]" + (f":{port}" if port else "")
    if parts.username is not None:
        credentials: dict[str, Any] = {
            "access_key": unquote(parts.username),
            "secret_key": unquote(parts.password or ""),
        }
    else:
        credentials = {"credentials": ChainedProvider([EnvAWSProvider(), EnvMinioProvider()])}
    try:
        client = Minio(
            endpoint,
            secure=secure,
            region=options.get("region") or None,
            http_client=_http_client(),
            **credentials,
        )
    except ValueError as exc:
        raise ObjectStoreConfigError(f"bad S3 URL: {exc}") from exc
    where = f"{'https' if secure else 'http'}://{endpoint}"
    return S3ObjectStore(client, bucket, retention, create_bucket=create_bucket, where=where)


def _http_client() -> urllib3.PoolManager:
    """minio's own pool (TLS checked against ``$SSL_CERT_FILE`` or certifi, 5 tries on 5xx answers), except that
    a server that refuses or does not answer the connection is tried twice, not six times with back-off, and
    gets 30 s to answer it, not 5 minutes: a node that cannot reach its store says so in seconds."""
    import os

    import certifi

    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=30, read=300),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=5, connect=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


def _flag(options: dict[str, str], name: str, *, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    if value.lower() not in _TRUE:
        raise ObjectStoreConfigError(f"S3 URL option {name} must be true or false, got {value!r}")
    return _TRUE[value.lower()]


class S3ObjectStore:
    """Objects in one object-locked bucket, keyed ``sha256/<hex>``."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        retention: RetentionPolicy,
        *,
        create_bucket: bool = True,
        where: str = "the S3 server",
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.retention = retention
        self.where = where
        with self._opening():
            self._ensure_bucket(create_bucket)

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r})"

    def _ensure_bucket(self, create: bool) -> None:
        with self._errors(f"bucket {self.bucket}"):
            if not self.client.bucket_exists(self.bucket):
                if not create:
                    raise ObjectStoreConfigError(f"bucket {self.bucket} does not exist (and create_bucket=false)")
                try:
                    self.client.make_bucket(self.bucket, object_lock=True)
                except S3Error as exc:  # another replica may have created it a moment ago
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            try:
                self.client.get_object_lock_config(self.bucket)
            except S3Error as exc:
                if exc.code == "ObjectLockConfigurationNotFoundError":
                    # Object lock can only be switched on when a bucket is created: refuse rather than
                    # silently storing the archive in deletable objects.
                    raise ObjectStoreConfigError(
                        f"bucket {self.bucket} has no object lock; create a new bucket with object lock "
                        "enabled (or let the node create it) — it cannot be enabled on an existing bucket"
                    ) from exc
                raise

    @contextmanager
    def _opening(self) -> Iterator[None]:
        """At open, every failure is a configuration problem the operator must fix before the node can run:
        an unreachable server, TLS against plain HTTP, missing or refused credentials, a missing bucket."""
        try:
            yield
        except ObjectStoreConfigError:
            raise
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code in _REFUSED_CREDENTIALS:
                raise ObjectStoreConfigError(
                    f"{self.where} refused the credentials ({cause.code}: {cause.message}); check the access "
                    "key and secret (in the URL, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and that they may "
                    f"use bucket {self.bucket}"
                ) from exc
            if isinstance(cause, S3Error):
                raise ObjectStoreConfigError(
                    f"bucket {self.bucket} on {self.where}: {cause.code}: {cause.message}"
                ) from exc
            hint = "check the host and port, and that the server runs"
            if _is_tls_failure(cause):
                hint = "TLS failed: if the server speaks plain HTTP, add ?secure=false to the URL"
            raise ObjectStoreConfigError(f"cannot reach {self.where} (bucket {self.bucket}): {hint} ({cause})") from exc
        except ValueError as exc:  # minio's credential providers found nothing
            raise ObjectStoreConfigError(
                f"no S3 credentials for {self.where}: put ACCESS:SECRET in the URL or set "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or MINIO_ACCESS_KEY and MINIO_SECRET_KEY) ({exc})"
            ) from exc

    # --- finding the version that holds the key's bytes ---

    def _versions(self, key: str) -> list[Object]:
        """Every stored (not deleted) version of *key*, oldest first, with its headers.

        The oldest first because the store writes a key once: anything newer under the same name was
        put there by someone else. S3 lists versions newest first, so reversing keeps same-second
        versions in order before the stable sort by time."""
        listed = [
            o
            for o in self.client.list_objects(self.bucket, prefix=key, include_version=True)
            if o.object_name == key and not o.is_delete_marker
        ]
        listed.reverse()
        listed.sort(key=lambda o: o.last_modified or datetime.min.replace(tzinfo=UTC))
        versions = []
        for entry in listed:
            try:
                versions.append(self.client.stat_object(self.bucket, key, version_id=entry.version_id))
            except S3Error as exc:  # deleted between the listing and now
                if exc.code not in _NOT_FOUND:
                    raise
        return versions

    def _find(self, key: str, data: bytes | None = None) -> Object | None:
        """The version holding *key*'s bytes: among those whose metadata claims the hash, the first
        that matches *data* (if given), else the only one, else the first whose bytes re-hash right."""
        digest = key_digest(key)
        claiming = [v for v in self._versions(key) if _meta(v, META_SHA256) == digest]
        if data is not None:
            return next((v for v in claiming if self._holds(v, data)), None)
        if len(claiming) <= 1:
            return claiming[0] if claiming else None
        # Several versions claim the hash: someone forged one. Only the bytes can tell.
        return next((v for v in claiming if hashlib.sha256(self._read(v)).hexdigest() == digest), None)

    def _holds(self, version: Object, data: bytes) -> bool:
        # A plain ETag is the MD5 of the bytes on single-part uploads; matching it (with the size) proves
        # the content without downloading it. Any other ETag form means: read and compare.
        etag = (version.etag or "").strip('"')
        if len(etag) == 32 and "-" not in etag:
            return version.size == len(data) and etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self._read(version) == data

    def _read(self, version: Object) -> bytes:
        response = self.client.get_object(self.bucket, version.object_name or "", version_id=version.version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    # --- the ObjectStore protocol ---

    def put(
        self,
        data: bytes,
        *,
        document_class: str | None = None,
        content_type: str = "application/octet-stream",
        legal_hold: bool = False,
    ) -> ObjectRef:
        key = content_key(data)
        digest = key_digest(key)
        if document_class is not None:
            check_document_class(document_class)
        with self._errors(key):
            existing = self._find(key, data)
            if existing is None:
                version_id = self._put_new(key, data, document_class, content_type, legal_hold)
                if version_id is not None:
                    return ObjectRef(key=key, sha256=digest, size=len(data), version_id=version_id)
                existing = self._find(key, data)  # a concurrent writer stored the same bytes first
                if existing is None:
                    raise ObjectExistsError(f"{key} is taken by other bytes; a write-once store keeps them")
            if legal_hold:
                self.client.enable_object_legal_hold(self.bucket, key, version_id=existing.version_id)
            return ObjectRef(key=key, sha256=digest, size=len(data), version_id=existing.version_id)

    def _put_new(
        self, key: str, data: bytes, document_class: str | None, content_type: str, legal_hold: bool
    ) -> str | None:
        """Create the object; the new version id, or None if the server says the key already exists."""
        until = self.retention.retain_until(document_class, datetime.now(UTC))
        metadata: dict[str, str | list[str] | tuple[str]] = {
            META_SHA256: key_digest(key),
            META_CLASS: document_class or "",
        }
        retention = Retention(COMPLIANCE, until) if until else None
        headers = genheaders(metadata, None, None, retention, legal_hold)
        headers["Content-Type"] = content_type
        # If-None-Match: * makes the server refuse the write if the key exists (AWS since 2024, MinIO,
        # SeaweedFS), closing the race between the check above and this write. minio's put_object would
        # turn the header into user metadata, so the single-request primitive is used directly.
        headers["If-None-Match"] = "*"
        try:
            result = self.client._put_object(self.bucket, key, data, headers)
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            if exc.code != "NotImplemented":
                raise
            # A server without conditional writes: the bucket is versioned and locked, so a plain write
            # can at worst add a version; it never replaces the locked original.
            del headers["If-None-Match"]
            result = self.client._put_object(self.bucket, key, data, headers)
        return result.version_id

    def get(self, key: str) -> bytes:
        digest = key_digest(key)
        found_any = False
        with self._errors(key):
            # Versions claiming the right hash first, then any other: a forged version (or one with
            # forged metadata) must not hide the locked original.
            versions = sorted(self._versions(key), key=lambda v: _meta(v, META_SHA256) != digest)
            for version in versions:
                found_any = True
                data = self._read(version)
                if hashlib.sha256(data).hexdigest() == digest:
                    return data
        if found_any:
            raise ObjectCorruptError(f"{key}: no stored version of it matches its SHA-256 (bucket {self.bucket})")
        raise ObjectNotFoundError(f"{key}: no such object in bucket {self.bucket}")

    def exists(self, key: str) -> bool:
        with self._errors(key):
            return self._find(key) is not None

    def stat(self, key: str) -> ObjectInfo:
        with self._errors(key):
            version = self._find(key)
            if version is None:
                raise ObjectNotFoundError(f"{key}: no such object in bucket {self.bucket}")
            until_text = _meta(version, "x-amz-object-lock-retain-until-date")
            hold_text = _meta(version, "x-amz-object-lock-legal-hold")
            if until_text is None:  # some servers leave lock headers out of HEAD: ask explicitly
                until = self._retention_of(key, version.version_id)
            else:
                until = datetime.fromisoformat(until_text)
            if hold_text is None:
                hold = self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version.version_id)
            else:
                hold = hold_text.upper() == "ON"
        return ObjectInfo(
            key=key,
            sha256=key_digest(key),
            size=version.size or 0,
            content_type=version.content_type or "application/octet-stream",
            document_class=_meta(version, META_CLASS) or None,
            retain_until=until,
            legal_hold=hold,
            version_id=version.version_id,
        )

    def _retention_of(self, key: str, version_id: str | None) -> datetime | None:
        try:
            lock = self.client.get_object_retention(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
                return None  # this version carries no retention
            raise
        return lock.retain_until_date if lock else None

    def set_legal_hold(self, key: str, on: bool) -> None:
        with self._errors(key):
            version = self._find(key)
            if version is None:
                raise ObjectNotFoundError(f"{key}: no such object in bucket {self.bucket}")
            if on:
                self.client.enable_object_legal_hold(self.bucket, key, version_id=version.version_id)
            else:
                self.client.disable_object_legal_hold(self.bucket, key, version_id=version.version_id)

    def delete(self, key: str) -> None:
        info = self.stat(key)
        if info.locked_at(datetime.now(UTC)):
            why = "legal hold is on" if info.legal_hold else f"retained until {info.retain_until:%Y-%m-%d %H:%M} UTC"
            raise ObjectLockError(f"{key}: delete refused, {why}")
        with self._errors(key):
            # Every version and delete marker, by version id: deleting by name alone would only add a
            # delete marker on a versioned bucket and keep the bytes.
            for version in self.client.list_objects(self.bucket, prefix=key, include_version=True):
                if version.object_name != key:
                    continue
                try:
                    self.client.remove_object(self.bucket, key, version_id=version.version_id)
                except S3Error as exc:
                    # The server's own object-lock refusal (another version still retained, a clock
                    # ahead of ours): the server is the authority.
                    if exc.code == "AccessDenied":
                        raise ObjectLockError(f"{key}: the server refused deletion: {exc.message}") from exc
                    raise

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Client and network errors as storage errors; the server's lock refusal as ObjectLockError."""
        try:
            yield
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                raise ObjectNotFoundError(f"{what}: {exc.message}") from exc
            raise StorageError(f"{what}: S3 error {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"{what}: S3 request failed: {exc}") from exc


_REFUSED_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
    }
)


def _is_tls_failure(exc: BaseException | None) -> bool:
    import ssl

    while exc is not None:
        if isinstance(exc, ssl.SSLError | urllib3.exceptions.SSLError):
            return True
        reason = getattr(exc, "reason", None)
        exc = reason if isinstance(reason, BaseException) else exc.__cause__ or exc.__context__
    return False


def _meta(version: Object, name: str) -> str | None:
    headers = version.metadata
    if headers is None:
        return None
    value = headers.get(name)
    return None if value is None else str(value)
