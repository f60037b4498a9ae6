"""Codes of an authenticator app for a TOTP secret, as a phone would show them."""

from __future__ import annotations

import time

import pyotp


def code(secret: str, steps_ahead: int = 0) -> str:
    """The code for now, or for ``steps_ahead`` 30-second steps later (the server
    accepts one step of clock drift either side)."""
    return str(pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead))
