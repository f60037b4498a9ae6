"""Password hashing with argon2id."""

from __future__ import annotations

import secrets
from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: the rules in words, shown next to every password field before anyone types
RULES = (
    f"use at least {MIN_PASSWORD_LENGTH} characters (a few unrelated words make a strong,"
    " memorable one)"
)


@cache
def _hasher() -> PasswordHasher:
    """argon2 (and its cffi bindings) is loaded at the first login or password
    change, not at start-up: most processes never hash (docs/performance.md)."""
    from argon2 import PasswordHasher

    # Memory cost suits a Pi 4 (about 50 ms per hash there) while staying well
    # above OWASP's argon2id minimum of 19 MiB.
    return PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=2)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so a login for an
    unknown name costs the same time as for a known one (made on first use)."""
    return _hasher().hash(secrets.token_urlsafe(16))


class PasswordPolicyError(ValueError):
    pass


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-ish time check; a missing user still costs one verification."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
