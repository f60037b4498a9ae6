"""Jinja2 rendering and the UI's static assets (no CDN, no build step).

Templates are autoescaped and never contain inline script, inline style or
``style=`` attributes: the strict CSP of ``app/core/headers.py`` applies to the
UI unchanged. Static files are read once, served from memory, and referenced
with a content hash (``?v=``) so a browser on a phone can cache them for good.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from app.auth.initial import pending_for
from app.core.clock import utcnow
from app.security.passwords import RULES
from app.security.principal import Principal, Scope

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

#: The login page's assets: the only UI files served without a session.
PUBLIC_ASSETS: tuple[str, ...] = (
    "app.css",
    "login.js",
    "icon.svg",
    # the web app manifest and its icons: a phone fetches them without the cookie
    "manifest.webmanifest",
    "icon-192.png",
    "icon-512.png",
)

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    digest: str


def _load_assets() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = _TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:12]
        assets[path.name] = Asset(path.name, body, content_type, digest)
    return assets


ASSETS: dict[str, Asset] = _load_assets()


def static_url(name: str) -> str:
    """The URL of an asset, versioned by its content."""
    asset = ASSETS[name]
    prefix = "/static/" if name in PUBLIC_ASSETS else "/ui/static/"
    return f"{prefix}{name}?v={asset.digest}"


# --- filters --------------------------------------------------------------------

_ISO_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})")


def when(value: str | None) -> str:
    """``2026-01-02 10:30 UTC`` from a stored timestamp; '-' when missing."""
    if not value:
        return "-"
    match = _ISO_RE.match(value)
    return f"{match.group(1)} {match.group(2)} UTC" if match else value


def ago(value: str | None) -> str:
    """A plain-words age: 'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if not value:
        return "never"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def size(value: int | float | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"  # pragma: no cover - the loop always returns


def usd(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"${float(value):,.4f}" if 0 < float(value) < 0.01 else f"${float(value):,.2f}"


def number(value: int | float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "-"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{total} s"


_MARKERS = re.compile(r"(\[REDACTED:[a-z_]+\]|\n?\[TRUNCATED: output exceeded \d+ bytes\])")


def transcript(text: str) -> Markup:
    """Escaped transcript text with redaction and truncation markers highlighted."""
    parts: list[str] = []
    for piece in _MARKERS.split(text):
        if not piece:
            continue
        if piece.startswith("[REDACTED:"):
            parts.append(
                f'<mark class="redacted" title="a credential was removed">{escape(piece)}</mark>'
            )
        elif piece.lstrip("\n").startswith("[TRUNCATED:"):
            parts.append(f'\n<mark class="truncated">{escape(piece.lstrip(chr(10)))}</mark>')
        else:
            parts.append(str(escape(piece)))
    return Markup("".join(parts))  # noqa: S704 - every piece above is escaped


@cache
def environment() -> Environment:
    """The template environment, built on the first page rendered: Jinja2 and its
    compiled templates cost the API about 2.4 MB of memory, and an appliance whose
    UI is not open never needs them (docs/performance.md)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        when=when,
        ago=ago,
        size=size,
        usd=usd,
        number=number,
        duration=duration,
        transcript=transcript,
    )
    env.globals.update(static_url=static_url, Scope=Scope, password_rules=sentence(RULES))
    return env


def sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def render_html(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code)


def page(
    request: Request,
    principal: Principal,
    template: str,
    *,
    title: str,
    section: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the logged-in UI: layout, navigation and the session's CSRF token.

    While the first-run password file exists, its user is asked on every page to
    choose a password of their own (the change removes the file)."""
    context.setdefault("nav", {"unread": 0, "escalations": 0})
    app_context = getattr(request.app.state, "context", None)
    initial_password = (
        pending_for(app_context.settings.state_dir, principal.name)
        if app_context is not None and principal.kind == "session"
        else None
    )
    return render_html(
        template,
        status_code=status_code,
        request_path=request.url.path,
        principal=principal,
        csrf_token=principal.csrf_token or "",
        can_operate=principal.scope.allows(Scope.OPERATE),
        is_admin=principal.scope.allows(Scope.ADMIN),
        initial_password=initial_password,
        title=title,
        section=section,
        **context,
    )
