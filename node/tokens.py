"""API tokens for people and programs: a role each (clerk, archivist, auditor, admin), kept only as SHA-256.

A token is shown once when it is made (``lienthong token create``); the node keeps its hash, so a copy of
the database does not give anyone access.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

from sqlalchemy import select

from node.errors import NodeError
from node.events import record_event
from node.runtime import NodeRuntime
from storage.exchange import ApiTokenRow

PREFIX = "lt_"


class Role(StrEnum):
    CLERK = "clerk"  # văn thư: send, answer, follow statuses
    ARCHIVIST = "archivist"  # lưu trữ: find, read and export the archive
    AUDITOR = "auditor"  # kiểm toán: read the audit log and events
    ADMIN = "admin"  # quản trị: everything, tokens included


# What each role may do. Admin may do everything.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.CLERK: frozenset({"messages:send", "messages:read", "statuses:send", "statuses:read"}),
    Role.ARCHIVIST: frozenset({"messages:read", "statuses:read", "archive:read", "archive:export"}),
    Role.AUDITOR: frozenset({"audit:read", "statuses:read"}),
    Role.ADMIN: frozenset({"*"}),
}


class TokenError(NodeError):
    """A token is missing, unknown, revoked, or lacks the permission asked for."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def allowed(role: Role, permission: str) -> bool:
    granted = PERMISSIONS[role]
    return "*" in granted or permission in granted


def create_token(runtime: NodeRuntime, name: str, role: Role) -> str:
    """Make a token for ``name``; return it (the only time it is seen)."""
    token = PREFIX + secrets.token_urlsafe(32)
    with runtime.session() as s:
        if s.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first() is not None:
            raise NodeError(f"a token named {name!r} exists already (revoke it first)")
        s.add(ApiTokenRow(name=name, role=role.value, token_sha256=_digest(token)))
    record_event(runtime, "admin.token_created", name=name, role=role.value)
    return token


def revoke_token(runtime: NodeRuntime, name: str) -> None:
    with runtime.session() as s:
        row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
        if row is None:
            raise NodeError(f"no token named {name!r}")
        row.revoked = True
        row.name = f"{name}#revoked-{row.id}"
    record_event(runtime, "admin.token_revoked", name=name)


def list_tokens(runtime: NodeRuntime) -> list[tuple[str, str, bool]]:
    with runtime.session() as s:
        return [(r.name, r.role, r.revoked) for r in s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]


def authenticate(runtime: NodeRuntime, header: str | None, permission: str) -> tuple[str, Role]:
    """The token's (name, role) when ``header`` carries a live token allowed ``permission``."""
    if not header or not header.startswith("Bearer "):
        raise TokenError(401, "an API token is required: Authorization: Bearer <token>")
    token = header.removeprefix("Bearer ").strip()
    digest = _digest(token)
    with runtime.session() as s:
        row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.token_sha256 == digest)).first()
        if row is None or row.revoked:  # found by its hash: nothing secret is compared in Python
            raise TokenError(401, "the API token is unknown or revoked")
        role, name = Role(row.role), row.name
    if not allowed(role, permission):
        raise TokenError(403, f"the role {role.value} may not {permission}")
    return name, role


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
