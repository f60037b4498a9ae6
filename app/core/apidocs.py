"""A credential-protected, dependency-free page listing the API's operations.

Swagger UI would load scripts from a CDN; this page is plain server-rendered
HTML under the strict CSP.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE_FREE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mission Control API</title></head>
<body><h1>Mission Control API {version}</h1>
<p>Machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a>
(send the same credential). Scopes: read &lt; operate &lt; admin.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>"""


def render_operations(schema: dict[str, Any]) -> str:
    rows: list[str] = []
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, operation in sorted(operations.items()):
            summary = operation.get("summary") or operation.get("description") or ""
            rows.append(
                f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(str(summary).splitlines()[0] if summary else '')}</td></tr>"
            )
    version = escape(str(schema.get("info", {}).get("version", "")))
    return STYLE_FREE_PAGE.format(version=version, rows="".join(rows))
