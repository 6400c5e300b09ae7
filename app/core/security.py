"""API keys and scopes: the pure part of authentication and authorization."""

import hashlib
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

KEY_PREFIX = "tthc_"
# How much of a key is kept in clear, so that operators can tell keys apart.
KEY_HINT_LENGTH = len(KEY_PREFIX) + 6
# last_used_at is refreshed at most this often, so that authenticated reads are not all writes.
LAST_USED_RESOLUTION_SECONDS = 60


class Scope(StrEnum):
    units_write = "units:write"
    catalogue_write = "catalogue:write"
    proposals_write = "proposals:write"
    proposals_decide = "proposals:decide"
    dossiers_write = "dossiers:write"
    dossiers_read = "dossiers:read"
    feedback_write = "feedback:write"
    admin = "admin"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.units_write: "Create and change administrative units",
    Scope.catalogue_write: "Change sectors and the procedure catalogue",
    Scope.proposals_write: "Draft, submit and withdraw reform proposals",
    Scope.proposals_decide: "Approve, reject and implement reform proposals",
    Scope.dossiers_write: "Push dossier events",
    Scope.dossiers_read: "Read dossiers and their events",
    Scope.feedback_write: "Record and handle citizen feedback",
    Scope.admin: "Manage API clients and read the audit log",
}


def new_key() -> str:
    """A fresh API key: 256 random bits behind a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys are long random secrets, so a fast unsalted hash resists guessing; it also lets the
    # database find the key by an indexed equality lookup.
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    return key[:KEY_HINT_LENGTH]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    client_id: int
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    unit_code: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes
