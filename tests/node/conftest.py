"""The node's tests sign with the same test CA and SoftHSM token as the signing tests."""

from tests.signing.conftest import softhsm_token, test_ca

__all__ = ["softhsm_token", "test_ca"]
