"""Which human is behind an actor: the two-person checks compare people.

Actors are how the audit log and the stores name a caller: ``user:<name>``
for a logged-in session, ``token:<public id>`` for an API token. A token acts
for its owner (``api_tokens.owner_user_id``: required by ``missionctl token
create --owner``, inherited by tokens made through the API), so a person who
proposes a mission or writes a rule with "their" token is the same human when
they approve it in their browser session.

An actor that cannot be traced to a human (a token without an owner, a CLI
or system actor) is treated as possibly anyone: checks that need a second
human refuse (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

from app.security.principal import Principal


async def human_of_actor(conn: aiosqlite.Connection, actor: str) -> int | None:
    """The user id behind ``actor``, or None when it cannot be told."""
    kind, _, name = actor.partition(":")
    if kind == "user" and name:
        async with conn.execute(
            "SELECT id FROM users WHERE username = ? COLLATE NOCASE", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else None
    if kind == "token" and name:
        async with conn.execute(
            "SELECT owner_user_id FROM api_tokens WHERE public_id = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else None
    return None


async def shares_a_human(
    conn: aiosqlite.Connection, principal: Principal, actors: Iterable[str]
) -> str | None:
    """Why ``principal`` may not be the second human for work by ``actors``:
    ``"same_human"`` (one of them is the same person), ``"unknown_human"``
    (one of them cannot be traced to a person, or the caller cannot), or None."""
    me = principal.human_id
    if me is None:
        return "unknown_human"
    unknown = False
    for actor in actors:
        if actor.casefold() == principal.actor.casefold():
            return "same_human"
        human = await human_of_actor(conn, actor)
        if human == me:
            return "same_human"
        unknown = unknown or human is None
    return "unknown_human" if unknown else None
