"""Detector: URLs with a password in their userinfo (``scheme://user:password@host``).

A data-store URL is redacted whole; any other URL loses its password only.
"""

from __future__ import annotations

from app.security.credential_gate.heuristics import PLACEHOLDER_VALUES, is_template
from app.security.credential_gate.model import P_URL, Candidate, CredentialKind
from app.security.credential_gate.patterns import compiled, flooded

_URL_USERINFO = compiled(r"://(?P<user>[^\s:/@\"'<>`]{0,128}+):(?P<pw>[^\s/\"'<>`]{1,256})@")
_URL_TAIL = compiled(r"[^\s\"'<>`)\]}]{0,2048}+")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_DB_SCHEMES = frozenset(
    {
        "postgres",
        "postgresql",
        "pgsql",
        "mysql",
        "mariadb",
        "mongodb",
        "redis",
        "rediss",
        "valkey",
        "amqp",
        "amqps",
        "mssql",
        "sqlserver",
        "oracle",
        "cockroachdb",
        "clickhouse",
        "couchdb",
        "couchbase",
        "neo4j",
        "bolt",
        "cassandra",
        "memcached",
        "influxdb",
        "elasticsearch",
        "opensearch",
        "nats",
        "kafka",
        "snowflake",
        "db2",
        "timescaledb",
    }
)


def find_database_urls(text: str, out: list[Candidate]) -> None:
    if "://" not in text:
        return
    for count, m in enumerate(_URL_USERINFO.finditer(text)):
        if flooded(count, m, text, out, P_URL, CredentialKind.PASSWORD):
            break
        pw = m.group("pw")
        if is_template(pw) or len(set(pw)) == 1 or pw.lower() in PLACEHOLDER_VALUES:
            continue  # postgres://user:password@host in documentation
        i = m.start()
        lo = max(0, i - 32)
        while i > lo and text[i - 1] in _SCHEME_CHARS:
            i -= 1
        while i < m.start() and not text[i].isalpha():
            i += 1
        scheme = text[i : m.start()].lower()
        if scheme.split("+", 1)[0] in _DB_SCHEMES:
            tail = _URL_TAIL.match(text, m.end())
            end = tail.end() if tail is not None else m.end()
            while end > m.end() and text[end - 1] in ".,;:":
                end -= 1
            out.append((P_URL, i, end, CredentialKind.DATABASE_URL))
        else:
            out.append((P_URL, m.start("pw"), m.end("pw"), CredentialKind.PASSWORD))
