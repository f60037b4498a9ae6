"""The optional second factor: time-based one-time codes (TOTP, RFC 6238).

* Enrolment (``begin_enrolment``) makes a secret and shows it once, as text and
  as a QR code (segno, an inline SVG: no script, no style, CSP-safe). It is not
  active until a code from the authenticator app confirms it
  (``confirm_enrolment``), which also hands out ten recovery codes, once.
* The secret is stored sealed (AES-GCM under a key derived from the server key,
  bound to the user id): a copied database or backup does not hold it in the
  clear, and it is never logged, audited or put in the support bundle.
* Recovery codes are stored as argon2 hashes, like passwords; each works once.
* ``check_code`` accepts the current code or its neighbour (clock drift of one
  30 s step), never a time step at or before the last one accepted: a code
  seen over someone's shoulder cannot be replayed within its window.
* Failures count against the login lock-out (``app.auth.lockout``); callers
  check ``lockout.lockout_wait`` first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

import aiosqlite
import pyotp

from app.core.clock import now_iso, utcnow
from app.core.context import AppContext
from app.core.errors import ApiError
from app.security.passwords import hash_password, verify_password

ISSUER = "Mission Control"
RECOVERY_CODES = 10
#: a code from the app: six digits, spaces allowed ("123 456")
_TOTP_RE = re.compile(r"^\d{6}$")
#: a recovery code: four groups of four letters/digits (dashes and case ignored)
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_RE = re.compile(r"^[a-z0-9]{16}$")
_SEAL_VERSION = "v1"


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows once: the secret, its URI and QR code."""

    secret: str
    uri: str
    qr_svg: str


# --- sealing ---------------------------------------------------------------------------------


def _seal_key(server_key: bytes) -> bytes:
    return hmac.new(server_key, b"totp-secret-seal\0v1", hashlib.sha256).digest()


def seal(server_key: bytes, user_id: int, secret: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_seal_key(server_key)).encrypt(nonce, secret.encode(), str(user_id).encode())
    return f"{_SEAL_VERSION}:" + base64.b64encode(nonce + sealed).decode()


def unseal(server_key: bytes, user_id: int, sealed: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    version, _, body = sealed.partition(":")
    if version != _SEAL_VERSION:
        raise ValueError("unknown seal version")
    raw = base64.b64decode(body)
    plain = AESGCM(_seal_key(server_key)).decrypt(raw[:12], raw[12:], str(user_id).encode())
    return plain.decode()


# --- reading ---------------------------------------------------------------------------------


async def status(conn: aiosqlite.Connection, user_id: int) -> tuple[bool, int]:
    """(enrolled and confirmed, unused recovery codes left)."""
    async with conn.execute(
        "SELECT confirmed_at FROM totp_credentials WHERE user_id = ?", (user_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[0] is None:
        return False, 0
    async with conn.execute(
        "SELECT count(*) FROM totp_recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,),
    ) as cursor:
        left = await cursor.fetchone()
    return True, int(left[0]) if left else 0


async def is_enrolled(ctx: AppContext, user_id: int) -> bool:
    async with ctx.db.read() as conn:
        enrolled, _ = await status(conn, user_id)
    return enrolled


# --- enrolment -------------------------------------------------------------------------------


def _qr_svg(uri: str) -> str:
    import segno

    return str(
        segno.make(uri, error="m").svg_inline(
            scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"
        )
    )


async def begin_enrolment(ctx: AppContext, user_id: int, username: str) -> Enrolment:
    """A new, unconfirmed secret (replacing an unconfirmed one); 409 when enrolled."""
    secret = pyotp.random_base32()
    async with ctx.db.write() as conn:
        enrolled, _ = await status(conn, user_id)
        if enrolled:
            raise ApiError(
                409,
                "totp_enrolled",
                "a second factor is already active; turn it off first to enrol a new one",
            )
        await conn.execute(
            "INSERT INTO totp_credentials (user_id, secret_sealed, confirmed_at, last_step,"
            " created_at) VALUES (?, ?, NULL, 0, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " secret_sealed = excluded.secret_sealed, confirmed_at = NULL, last_step = 0,"
            " created_at = excluded.created_at",
            (user_id, seal(ctx.server_key, user_id, secret), now_iso()),
        )
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    return Enrolment(secret=secret, uri=uri, qr_svg=_qr_svg(uri))


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _normalise(code: str) -> str:
    return re.sub(r"[\s\-]", "", code).lower()


async def confirm_enrolment(ctx: AppContext, user_id: int, code: str) -> list[str] | None:
    """Activate the pending secret when ``code`` matches it; the recovery codes
    (shown once), or None when the code is wrong. 409 when nothing is pending."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    hashes = await asyncio.to_thread(lambda: [hash_password(_normalise(c)) for c in codes])
    async with ctx.db.write() as conn:
        async with conn.execute(
            "SELECT secret_sealed, confirmed_at FROM totp_credentials WHERE user_id = ?",
            (user_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or row[1] is not None:
            raise ApiError(
                409,
                "no_pending_enrolment",
                "there is no enrolment to confirm: start one on the account page",
            )
        step = _matching_step(unseal(ctx.server_key, user_id, str(row[0])), code, after=0)
        if step is None:
            return None
        await conn.execute(
            "UPDATE totp_credentials SET confirmed_at = ?, last_step = ? WHERE user_id = ?",
            (now_iso(), step, user_id),
        )
        await conn.execute("DELETE FROM totp_recovery_codes WHERE user_id = ?", (user_id,))
        await conn.executemany(
            "INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES (?, ?)",
            [(user_id, h) for h in hashes],
        )
    return codes


async def remove(conn: aiosqlite.Connection, user_id: int) -> bool:
    """Turn the second factor off (the caller has checked a fresh step-up)."""
    cursor = await conn.execute("DELETE FROM totp_credentials WHERE user_id = ?", (user_id,))
    await conn.execute("DELETE FROM totp_recovery_codes WHERE user_id = ?", (user_id,))
    return cursor.rowcount > 0


# --- checking --------------------------------------------------------------------------------


def _matching_step(secret: str, code: str, *, after: int) -> int | None:
    """The time step (now or one either side) whose code is ``code``, if later than ``after``."""
    code = re.sub(r"\s", "", code)
    if not _TOTP_RE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(utcnow())
    found: int | None = None
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and step > after:
            found = step
    return found


async def check_code(ctx: AppContext, user_id: int, code: str) -> str | None:
    """Check a second-factor ``code`` of an enrolled user and use it up.

    Returns how it matched (``"totp"`` or ``"recovery"``), or None: wrong, a
    replay of an accepted TOTP code, or a recovery code already used."""
    cleaned = _normalise(code)
    if _TOTP_RE.match(cleaned):
        async with ctx.db.write() as conn:
            async with conn.execute(
                "SELECT secret_sealed, last_step FROM totp_credentials"
                " WHERE user_id = ? AND confirmed_at IS NOT NULL",
                (user_id,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            secret = unseal(ctx.server_key, user_id, str(row[0]))
            step = _matching_step(secret, cleaned, after=int(row[1]))
            if step is None:
                return None
            await conn.execute(
                "UPDATE totp_credentials SET last_step = ? WHERE user_id = ?", (step, user_id)
            )
        return "totp"
    if not _RECOVERY_RE.match(cleaned) or not await is_enrolled(ctx, user_id):
        return None
    unused = await ctx.db.fetch_all(
        "SELECT id, code_hash FROM totp_recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,),
    )
    for row in unused:
        # argon2 off the event loop; the write below is conditional, so two
        # requests racing with one code cannot both use it
        if await asyncio.to_thread(verify_password, str(row["code_hash"]), cleaned):
            async with ctx.db.write() as conn:
                cursor = await conn.execute(
                    "UPDATE totp_recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL",
                    (now_iso(), int(row["id"])),
                )
            return "recovery" if cursor.rowcount == 1 else None
    return None
