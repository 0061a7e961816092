"""Who is acting: a caller's name and role (and its customer, for a key bound to one).

The doors turn a presented key into a :class:`Principal` (:mod:`service.api.access`); the
core takes it to check a customer key's reach and to name the actor in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    CHAT = "chat"
    CUSTOMER = "customer"


ANY_ROLE = (Role.ADMIN, Role.CHAT, Role.CUSTOMER)
ADMIN_ONLY = (Role.ADMIN,)


@dataclass(frozen=True)
class Principal:
    """The caller: a key's name and role (and its customer, for a customer key)."""

    name: str
    role: Role
    customer: str | None = None

    def require_customer(self, user_identifier: str) -> None:
        """A customer key may only act for its own customer (exact match)."""
        if self.role is Role.CUSTOMER and user_identifier != self.customer:
            raise Forbidden(f"key '{self.name}' acts for one customer only; this request is about another")


# with no key configured (listening on loopback only): the local operator
LOCAL = Principal("local", Role.ADMIN)
# the operator at the command line (``loftmem``), as the audit trail names them
CLI = Principal("cli", Role.ADMIN)
