"""Shared test fixtures.

Under ``CI=true`` nothing may be skipped for a missing service, tool or corpus: such a test fails
loudly instead. Outside CI a skip says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.pgserver import PostgresServer

# Session fixtures shared across packages (test CA, SoftHSM token) are defined once, here, so that one
# process never creates two tokens: PKCS#11 modules read their configuration only once.
pytest_plugins = ["tests.signing.fixtures"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """Skip (outside CI) or fail (in CI) when something a test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for CI but missing: {why}")
    pytest.skip(why)


def _corpus_dir() -> Path:
    """``$LIENTHONG_CORPUS``, else the first ``shared/corpus`` beside the checkout or one of its ancestors
    (a CI clone may sit deeper than the working copy), else the workspace's."""
    configured = os.environ.get("LIENTHONG_CORPUS")
    if configured:
        return Path(configured)
    candidates = [p / "shared" / "corpus" for p in REPO.parents] + [Path("/work/shared/corpus")]
    return next((c for c in candidates if (c / "README.md").is_file()), candidates[0])


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The third-party test corpus (``../shared/corpus`` or ``$LIENTHONG_CORPUS``), used in place."""
    path = _corpus_dir()
    require((path / "README.md").is_file(), f"test corpus not found at {path} (set LIENTHONG_CORPUS)")
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (a throwaway cluster started here)."""
    import shutil
    import tempfile

    from tests.pgserver import find_tool, postgres_server

    require(find_tool("initdb") is not None, "PostgreSQL's initdb is not installed (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "the psycopg driver is not installed (pip install 'psycopg[binary]')")
    # Not under pytest's tmp_path: its parents are private to this user, and the server runs as "postgres".
    directory = Path(tempfile.mkdtemp(prefix="lienthong-pg-"))
    try:
        with postgres_server(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database: SQLite (the embedded default), then PostgreSQL (production), same tests."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
