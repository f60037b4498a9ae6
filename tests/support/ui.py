"""Helpers of the browser tests: log in, confirm a dialog, screenshots, and reading
back what a form stored (the server's own SQLite file, opened read-only)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
PASSWORD = "correct horse battery staple"


def shot(page: Any, name: str, *, full: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


def log_in(page: Any, user: str, password: str = PASSWORD) -> None:
    page.context.clear_cookies()  # a fresh session (a logged-in browser skips the form)
    page.goto("/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/"))


def confirm(page: Any) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("#confirm-ok").click()


def path_of(page: Any) -> str:
    return "/" + page.url.split("/", 3)[3]


def id_from_url(page: Any) -> int:
    return int(page.url.rstrip("/").rsplit("/", 1)[1].split("?", 1)[0].split("#", 1)[0])


class Stored:
    """What the server stored, read from its database file (read-only, WAL-safe)."""

    def __init__(self, database: Path) -> None:
        self.database = database

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row:
        found = self.rows(sql, params)
        assert len(found) == 1, (sql, params, [dict(r) for r in found])
        return found[0]

    def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.one(sql, params)[0]

    def count(self, table: str, where: str = "1 = 1", params: tuple[Any, ...] = ()) -> int:
        return int(self.value(f"SELECT count(*) FROM {table} WHERE {where}", params))
