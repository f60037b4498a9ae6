"""The QR code a phone's WireGuard app scans: an inline SVG made with segno.

Made in memory for the one answer that shows a new peer's configuration; never
written anywhere (the configuration holds the peer's private key).
"""

from __future__ import annotations

import segno


def qr_svg(text: str) -> str:
    """An ``<svg>`` element (no XML declaration, no script) encoding ``text``."""
    code = segno.make(text, error="m", micro=False)
    svg: str = code.svg_inline(scale=4, border=4, dark="#000", light="#fff")
    return svg
