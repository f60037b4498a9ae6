"""The QR code a phone's WireGuard app scans: an inline SVG made with segno.

Made in memory for the one answer that shows a new peer's configuration; never
written anywhere (the configuration holds the peer's private key).
"""

from __future__ import annotations

import io

import segno


def qr_svg(text: str) -> str:
    """An ``<svg>`` element with its namespace (the page parses it as SVG, not
    HTML), no XML declaration, no script, encoding ``text``."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", xmldecl=False, svgns=True, scale=4, border=4, light="#fff")
    return out.getvalue().decode("utf-8")
