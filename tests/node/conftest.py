"""The exchange network of real processes, started once per test session for the tests that need it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.exchange_network import Exchange, start_exchange


@pytest.fixture(scope="session")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    from signing.devpki import serve_dev_pki

    directory: Path = tmp_path_factory.mktemp("exchange")
    with serve_dev_pki(directory / "pki", port=0) as responders:
        yield from start_exchange(directory, responders.url)
