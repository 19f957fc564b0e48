"""Shared test fixtures.

Under ``CI=true`` nothing may be skipped for a missing service, tool or corpus: such a test fails
loudly instead. Outside CI a skip says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
