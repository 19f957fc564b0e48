"""A node pointed at the wrong production backend says what is wrong, in one sentence, before it runs.

Wrong database URLs are refused when the configuration is read; an unreachable PostgreSQL, a wrong
password or a missing database, an unreachable S3 server, TLS spoken to a plain-HTTP server, missing or
refused S3 credentials and a bucket without object lock are refused when the node opens them — each
against a real server where one is needed (PostgreSQL from the ``postgres`` fixture, SeaweedFS from
``s3_server``), and never with the password in the message.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from minio import Minio

from node.config import load_settings
from node.errors import ConfigError
from storage import ObjectStoreConfigError, open_object_store
from storage.db import DatabaseConfigError, check_database_url, make_engine
from storage.migrate import current, upgrade
from tests.pgserver import PostgresServer
from tests.storage.s3server import S3Server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def _axis_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text("role: axis\nnode_id: truc\ntrace_organ_id: 000.00.00.H41\n", encoding="utf-8")
    return path


# --- database URL: checked when the configuration is read, nothing connected to


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:5432", "not a database URL"),
        ("postgres://u:pw@db/lienthong", "postgresql\\+psycopg://, not postgres://"),
        ("mysql://u:pw@db/lienthong", "SQLite or PostgreSQL only"),
        ("postgresql+nosuchdriver://u@db/lienthong", "unknown driver"),
        ("postgresql+psycopg2://u:pw@db/lienthong", "driver is not installed"),
        ("postgresql+psycopg://u:pw@db", "names no database"),
    ],
)
def test_a_wrong_database_url_is_refused_with_the_form_to_write(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseConfigError, match=message) as caught:
        check_database_url(url)
    assert ":pw@" not in str(caught.value)
    with pytest.raises(ConfigError, match=f"database_url: .*{message}") as config_error:
        load_settings(_axis_yaml(tmp_path), database_url=url)
    assert ":pw@" not in str(config_error.value)


def test_a_wrong_database_url_from_the_environment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", "postgres://lienthong@db/lienthong")
    with pytest.raises(ConfigError, match="database_url"):
        load_settings(_axis_yaml(tmp_path))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///var/node.db", "postgresql+psycopg://u@db:5432/lienthong"])
def test_supported_database_urls_pass(url: str) -> None:
    check_database_url(url)


# --- database: reached when the node opens it


def test_an_unreachable_postgresql_is_named_without_its_password() -> None:
    engine = make_engine(f"postgresql+psycopg://lienthong:s3cret@127.0.0.1:{_closed_port()}/lienthong")
    try:
        with pytest.raises(DatabaseConfigError, match=r"cannot use the database .*refused") as caught:
            upgrade(engine)
        assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
        with pytest.raises(DatabaseConfigError):
            current(engine)
    finally:
        engine.dispose()


def test_a_missing_postgresql_database_is_named(postgres: PostgresServer) -> None:
    engine = make_engine(postgres.url(f"missing_{uuid.uuid4().hex[:8]}"))
    try:
        with pytest.raises(DatabaseConfigError, match="does not exist"):
            upgrade(engine)
    finally:
        engine.dispose()


def test_a_wrong_postgresql_password_is_named(postgres: PostgresServer) -> None:
    import psycopg

    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=lienthong dbname=postgres", autocommit=True) as c:
        c.execute("SET password_encryption = 'scram-sha-256'")
        c.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
    # the test cluster trusts every local connection: make this role's connections ask for a password
    hba = postgres.directory / "pgdata" / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    try:
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=lienthong dbname=postgres") as c:
            c.execute("SELECT pg_reload_conf()")
        engine = make_engine(f"postgresql+psycopg://{role}:wrong-password@127.0.0.1:{postgres.port}/postgres")
        try:
            with pytest.raises(DatabaseConfigError, match="password authentication failed") as caught:
                upgrade(engine)
            assert "wrong-password" not in str(caught.value)
        finally:
            engine.dispose()
    finally:
        hba.write_text(original)
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=lienthong dbname=postgres") as c:
            c.execute("SELECT pg_reload_conf()")


# --- S3: reached when the node opens its store


def test_an_unreachable_s3_server_is_named_quickly() -> None:
    import time

    started = time.monotonic()
    with pytest.raises(ObjectStoreConfigError, match=r"cannot reach http://127\.0\.0\.1:.*check the host and port"):
        open_object_store(f"s3://ak:sk@127.0.0.1:{_closed_port()}/archive?secure=false")
    assert time.monotonic() - started < 5  # two connection attempts, not six with back-off


def test_tls_to_a_plain_http_server_suggests_secure_false(s3_server: S3Server) -> None:
    url = f"s3://{s3_server.access_key}:{s3_server.secret_key}@{s3_server.endpoint}/lt-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ObjectStoreConfigError, match=r"TLS failed: .*\?secure=false"):
        open_object_store(url)


@pytest.mark.parametrize(("access", "secret"), [("lienthong-test", "wrong-secret"), ("nobody", "wrong-secret")])
def test_refused_s3_credentials_are_named_without_the_secret(s3_server: S3Server, access: str, secret: str) -> None:
    url = f"s3://{access}:{secret}@{s3_server.endpoint}/lt-{uuid.uuid4().hex[:8]}?secure=false"
    with pytest.raises(ObjectStoreConfigError, match="refused the credentials") as caught:
        open_object_store(url)
    assert secret not in str(caught.value)


def test_missing_s3_credentials_say_where_to_put_them(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ObjectStoreConfigError, match=r"no S3 credentials.*AWS_ACCESS_KEY_ID"):
        open_object_store(f"s3://{s3_server.endpoint}/lt-{uuid.uuid4().hex[:8]}?secure=false")


def test_credentials_from_the_environment_open_the_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    store = open_object_store(f"s3://{s3_server.endpoint}/lt-{uuid.uuid4().hex[:8]}?secure=false")
    ref = store.put(b"bao cao")
    assert store.get(ref.key) == b"bao cao"


def test_a_node_refuses_a_bucket_without_object_lock(s3_server: S3Server, tmp_path: Path) -> None:
    from node.runtime import NodeRuntime

    bucket = f"lt-nolock-{uuid.uuid4().hex[:8]}"
    Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False).make_bucket(bucket)
    settings = load_settings(_axis_yaml(tmp_path), object_store=s3_server.url(bucket))
    with pytest.raises(ConfigError, match=f"object store: bucket {bucket} has no object lock"):
        NodeRuntime(settings)


def test_a_node_refuses_wrong_s3_credentials_as_a_configuration_error(s3_server: S3Server, tmp_path: Path) -> None:
    from node.runtime import NodeRuntime

    url = f"s3://{s3_server.access_key}:wrong@{s3_server.endpoint}/lt-{uuid.uuid4().hex[:8]}?secure=false"
    with pytest.raises(ConfigError, match=r"object store: .*refused the credentials"):
        NodeRuntime(load_settings(_axis_yaml(tmp_path), object_store=url))


# --- secrets in files: URLs with passwords kept out of node.yaml and the environment


def test_secret_files_set_fields_and_the_environment_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "lienthong_database_url").write_text("postgresql+psycopg://lienthong:pw@db:5432/lienthong\n")
    (secrets / "lienthong_object_store").write_text("s3://ak:sk@minio:9000/lienthong?secure=false\n")
    monkeypatch.setenv("LIENTHONG_SECRETS_DIR", str(secrets))
    settings = load_settings(_axis_yaml(tmp_path))
    assert settings.database == "postgresql+psycopg://lienthong:pw@db:5432/lienthong"
    assert settings.objects_url == "s3://ak:sk@minio:9000/lienthong?secure=false"
    monkeypatch.setenv("LIENTHONG_OBJECT_STORE", "/var/lib/lienthong/objects")
    assert load_settings(_axis_yaml(tmp_path)).objects_url == "/var/lib/lienthong/objects"
    monkeypatch.setenv("LIENTHONG_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="LIENTHONG_SECRETS_DIR"):
        load_settings(_axis_yaml(tmp_path))
