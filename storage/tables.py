"""Every module that defines tables of the node, imported so that ``Base.metadata`` knows them all."""

from storage import archive, auditlog, exchange, witness

__all__ = ["archive", "auditlog", "exchange", "witness"]
