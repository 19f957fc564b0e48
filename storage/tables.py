"""Every module that defines tables of the node, imported so that ``Base.metadata`` knows them all."""

from storage import auditlog, exchange, witness

__all__ = ["auditlog", "exchange", "witness"]
