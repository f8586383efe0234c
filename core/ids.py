"""Identifiers: random UUIDs for objects, high-entropy secrets for credentials."""

import hashlib
import secrets
import uuid


def new_id() -> uuid.UUID:
    """A random (version 4) UUID."""
    return uuid.uuid4()


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret with `nbytes` bytes (256 bits by default) of entropy."""
    return secrets.token_urlsafe(nbytes)


def secret_digest(value: str) -> str:
    """SHA-256 hex digest of a random secret; a slow hash buys nothing for 256-bit randomness."""
    return hashlib.sha256(value.encode()).hexdigest()


def canonical_uuid(value) -> uuid.UUID | None:
    """The UUID `value` names when it is spelled the one way this service writes UUIDs
    (lower case, hyphenated); None for anything else, other spellings of a UUID included."""
    try:
        parsed = uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None
    return parsed if str(parsed) == value else None
