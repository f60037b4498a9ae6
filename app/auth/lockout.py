"""The lock-out that guards every check of a person's secrets (F4).

Login, step-up and second-factor checks share one throttle
(``app.core.login_throttle.LoginThrottle``): a failure at any of them counts
against the (user, client) pair, the client and the user's global ceiling, so
guessing a password or a TOTP code through the step-up form is no cheaper than
through the login form.
"""

from __future__ import annotations

from app.core.context import AppContext


async def logged_in_from(ctx: AppContext, username: str, client: str) -> bool:
    """Whether ``username`` has logged in from ``client`` before (their own address)."""
    if not client:
        return False
    row = await ctx.db.fetch_one(
        "SELECT 1 FROM audit_log WHERE action = 'auth.login' AND outcome = 'ok'"
        " AND actor = ? AND client = ? LIMIT 1",
        (f"user:{username}", client),
    )
    return row is not None


async def lockout_wait(ctx: AppContext, username: str, user_known: bool, client: str) -> float:
    """Seconds ``client`` must wait before trying ``username``'s secrets again."""
    throttle = ctx.login_throttle
    wait = throttle.retry_after(*throttle.keys(username, client))
    if wait > 0 or not user_known:
        return wait
    ceiling = throttle.retry_after(throttle.user_key(username))
    if ceiling > 0 and not await logged_in_from(ctx, username, client):
        return ceiling  # many failures from elsewhere: only known addresses still try
    return 0.0


def failed(ctx: AppContext, username: str, client: str) -> None:
    """Count one failed check of ``username``'s secrets from ``client``."""
    throttle = ctx.login_throttle
    throttle.failed(*throttle.keys(username, client), throttle.user_key(username))


def succeeded(ctx: AppContext, username: str, client: str) -> None:
    throttle = ctx.login_throttle
    throttle.succeeded(*throttle.keys(username, client))
