"""The signing fixtures live in ``tests.signing.fixtures`` (registered once for the whole suite by
``tests/conftest.py``); the types are re-exported here for modules that import them from this path."""

from tests.signing.fixtures import CaFixture, Leaf, SoftHsmToken, find_softhsm_module, write_certs, write_key

__all__ = ["CaFixture", "Leaf", "SoftHsmToken", "find_softhsm_module", "write_certs", "write_key"]
