"""Detector: the other fixed formats. Discord webhooks, Azure SAS signatures,
docker ``config.json`` auths, Cookie headers, password hashes, passwords on
command lines (``mysql -p``, ``curl -u``, ``sshpass -p``, ``ssh-keygen -N/-P``).
"""

from __future__ import annotations

import base64
import binascii
import bisect

from app.security.credential_gate.heuristics import (
    PLACEHOLDER_VALUES,
    has_digit,
    high_entropy,
    is_template,
    plausible_token,
)
from app.security.credential_gate.model import (
    P_AUTH_HEADER,
    P_GENERIC,
    P_KEYED,
    P_PREFIXED,
    Candidate,
    CredentialKind,
)
from app.security.credential_gate.patterns import PERCENT, compiled, flooded

_DISCORD_WEBHOOK = compiled(
    r"discord(?:app)?\.com/api/webhooks/[0-9]{15,22}+/[A-Za-z0-9_\-]{50,100}+(?![A-Za-z0-9_\-])"
)
# Azure shared access signature: ...&sig=<url-encoded base64 HMAC>
_SAS_SIG = compiled(r"sig=(?<=[?&;]sig=)(?P<v>[A-Za-z0-9%+/=]{20,256}+)(?![A-Za-z0-9%+/=])")
# docker/podman config.json: "auth": "<base64 of user:password>"
_DOCKER_AUTH = compiled(r"\"auth\"[ \t]{0,8}+:[ \t]{0,8}+\"(?P<v>[A-Za-z0-9+/]{8,2048}+={0,2})\"")
_COOKIE = compiled(r"cookie[\"']?[ \t]{0,8}+:[ \t]{0,8}+[\"']?")
_COOKIE_PAIR = compiled(r"(?P<name>[A-Za-z0-9_.\-]{1,128}+)=(?P<v>[^;\s\"',\\]{1,4096}+)")
_COOKIE_SPAN = 4096
# crypt(3) and PHC strings: $1$ $5$ $6$ (optionally rounds=) $2a/b/y$ $apr1$ $y$
# $7$ $argon2i/d/id$; the whole string is replaced.
_HASH_LITERALS = ("$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "$apr1$", "$y$", "$7$", "$argon2")
_PASSWORD_HASH = compiled(
    r"\$(?:1|5|6|2[aby]|apr1|y|7|argon2(?:id|i|d))\$[A-Za-z0-9./$=,+\-]{8,1024}+"
)
_HASH_FIELD = compiled(r"[A-Za-z0-9./+]{16,1024}")
# A flag and its value on a command line. The flag must start a word.
_FLAG = compiled(
    r"-(?<![^ \t\n]-)(?P<flag>p|u|N|P|-user)(?P<sep>[ \t]{1,8}+|=)?"
    r"(?P<v>'[^'\n]{1,256}+'|\"[^\"\n]{1,256}+\"|[^\s'\"`|;&\-][^\s'\"`|;&]{0,255}+)"
)
# Literals first (the engine then skips quickly to a candidate); the left word
# boundary is checked in Python (_command_at).
_COMMAND = compiled(
    r"(?P<cmd>mysql[a-z_\-]{0,16}+|mariadb[a-z_\-]{0,16}+|curl|sshpass|ssh-keygen)"
    r"(?![A-Za-z0-9_\-])"
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_COMMAND_LINE_SPAN = 512


def _flag_takes_password(cmd: str, flag: str, attached: bool) -> bool:
    """``mysql -pPW``, ``curl -u user:PW``, ``sshpass -p PW``, ``ssh-keygen -N PW``."""
    if cmd.startswith(("mysql", "mariadb")):
        return flag == "p" and attached
    if cmd == "curl":
        return flag in ("u", "-user")
    if cmd == "sshpass":
        return flag == "p" and not attached
    return flag in ("N", "P") and not attached  # ssh-keygen


def _command_line_passwords(text: str, out: list[Candidate]) -> None:
    """Flags of the commands above, read on each command's line (bounded).

    Commands are rare, so the text is searched for them and only the rest of
    their line is read for flags; the next search starts after that line, so
    every character is read once. A flag belongs to the nearest command
    before it on the line.
    """
    if not any(cmd in text for cmd in ("mysql", "mariadb", "curl", "sshpass", "ssh-keygen")):
        return
    pos = 0
    count = 0
    while True:
        first = _COMMAND.search(text, pos)
        if first is None:
            return
        if first.start() > 0 and text[first.start() - 1] in _WORD_CHARS:
            pos = first.end()  # "libcurl", "my-mysql": not the command
            continue
        stop = text.find("\n", first.end(), first.end() + _COMMAND_LINE_SPAN)
        if stop == -1:
            stop = min(len(text), first.end() + _COMMAND_LINE_SPAN)
        pos = max(stop, first.end())
        commands = [
            (m.end(), m.group("cmd"))
            for m in _COMMAND.finditer(text, first.start(), stop)
            if m.start() == 0 or text[m.start() - 1] not in _WORD_CHARS
        ]
        ends = [end for end, _ in commands]
        for m in _FLAG.finditer(text, first.end(), stop):
            if flooded(count, m, text, out, P_KEYED, CredentialKind.PASSWORD):
                return
            count += 1
            flag = m.group("flag")
            attached = m.group("sep") is None
            cmd = commands[bisect.bisect_right(ends, m.start()) - 1][1]
            if not _flag_takes_password(cmd, flag, attached):
                continue
            start, end = m.span("v")
            value = text[start:end]
            if value[0] in "'\"":
                start, end, value = start + 1, end - 1, value[1:-1]
            if flag in ("u", "-user"):
                user, colon, pw = value.partition(":")
                if not colon or not pw:
                    continue  # curl -u user: prompts for the password
                start += len(user) + 1
                value = pw
            if not value or is_template(value) or "***" in value:
                continue
            if value.lower() not in PLACEHOLDER_VALUES:
                out.append((P_KEYED, start, end, CredentialKind.PASSWORD))


def _password_hashes(text: str, out: list[Candidate]) -> None:
    if not any(literal in text for literal in _HASH_LITERALS):
        return
    for count, m in enumerate(_PASSWORD_HASH.finditer(text)):
        if flooded(count, m, text, out, P_PREFIXED, CredentialKind.PASSWORD):
            break
        value = m.group().rstrip(",")
        last = value.rsplit("$", 1)[-1]
        if not _HASH_FIELD.fullmatch(last) and not (
            value.startswith("$2") and _HASH_FIELD.fullmatch(last[-31:])
        ):
            continue  # "$1$2" in a shell script, "$6$" in prose
        if not has_digit(last) and last in (last.lower(), last.upper()):
            continue
        out.append((P_PREFIXED, m.start(), m.start() + len(value), CredentialKind.PASSWORD))


_SEGMENT = compiled(r"[^_.\-]{1,4096}")


def _session_value(value: str) -> bool:
    """A random session id or signed session, not ``PART_NUMBER=ROCKET_LAUNCHER_0001``."""
    if not (high_entropy(value) and plausible_token(value, 16)):
        return False
    for segment in _SEGMENT.findall(value):
        if (
            len(segment) >= 4
            and segment.isalpha()
            and segment in (segment.lower(), segment.upper())
        ):
            return False  # words joined by separators
    return True


def _cookies(text: str, lowered: str, out: list[Candidate]) -> None:
    if "cookie" not in lowered:
        return
    pos = 0
    count = 0
    while True:
        m = _COOKIE.search(lowered, pos)
        if m is None:
            return
        if flooded(count, m, text, out, P_AUTH_HEADER, CredentialKind.BEARER_TOKEN):
            return
        count += 1
        # One header's value: the rest of the line, bounded; the next search
        # starts after it, so every character is read once.
        line_end = text.find("\n", m.end(), m.end() + _COOKIE_SPAN)
        stop = line_end if line_end != -1 else min(len(text), m.end() + _COOKIE_SPAN)
        pos = max(stop, m.end())
        set_cookie = lowered.endswith("set-", 0, m.start())
        for pair in _COOKIE_PAIR.finditer(text, m.end(), stop):
            start, end = pair.span("v")
            value = text[start:end]
            if _session_value(value):
                out.append((P_AUTH_HEADER, start, end, CredentialKind.BEARER_TOKEN))
            if set_cookie:
                break  # the attributes that follow (Path=, Expires=) are not cookies


def _docker_auth(value: str) -> bool:
    """base64 of ``user:password``: a printable user name, a colon, any password bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    user, colon, password = raw.partition(b":")
    return bool(colon and user and password) and all(32 < c < 127 for c in user)


def find_formats(text: str, lowered: str | None, out: list[Candidate]) -> None:
    if "discord" in text:
        for count, m in enumerate(_DISCORD_WEBHOOK.finditer(text)):
            if flooded(count, m, text, out, P_PREFIXED, CredentialKind.API_KEY):
                break
            start = m.start()
            for scheme in ("https://", "http://", "https://ptb.", "https://canary."):
                if text.startswith(scheme, start - len(scheme)):
                    start -= len(scheme)
                    break
            out.append((P_PREFIXED, start, m.end(), CredentialKind.API_KEY))
    if "sig=" in text:
        for count, m in enumerate(_SAS_SIG.finditer(text)):
            if flooded(count, m, text, out, P_GENERIC, CredentialKind.GENERIC_SECRET):
                break
            value = m.group("v")
            decoded = PERCENT.sub(lambda e: chr(int(e.group()[1:], 16)), value)
            if len(decoded) >= 20 and plausible_token(decoded, 20):
                out.append((P_GENERIC, m.start("v"), m.end("v"), CredentialKind.GENERIC_SECRET))
    if '"auth"' in text:
        for count, m in enumerate(_DOCKER_AUTH.finditer(text)):
            if flooded(count, m, text, out, P_KEYED, CredentialKind.PASSWORD):
                break
            if _docker_auth(m.group("v")):
                out.append((P_KEYED, m.start("v"), m.end("v"), CredentialKind.PASSWORD))
    if lowered is not None:
        _cookies(text, lowered, out)
    _password_hashes(text, out)
    _command_line_passwords(text, out)
