"""Credential gate (F14): find and redact eleven kinds of secret before text
reaches an agent's context window, the memory store or a log.

Public API::

    scan(text) -> list[Finding]         # non-overlapping, sorted by position
    redact(text) -> Redaction           # .text, .counts, .found
    contains_credential(text) -> bool

Each secret is replaced by a typed marker ``[REDACTED:<kind>]``. For
``key = value`` shaped secrets only the value is replaced, so the text stays
readable (``password=[REDACTED:password]``). Markers are never detected again:
redacting already-redacted text is a no-op.

Linear time by construction (see ``docs/credential-gate.md``):

* every expression is made by ``patterns.compiled``, which registers it so
  a test can check that none has a nested or an unbounded quantifier;
* every expression starts with a literal (or a small character set) so the
  regex engine only stops where a candidate can begin, and a cheap substring
  pre-check skips an expression entirely when its literal is absent;
* token bodies are bounded, possessive (``{m,n}+``: no backtracking) and the
  left word boundary is checked *after* the literal, so a run such as
  ``sk-sk-sk-...`` costs one step per occurrence instead of a rescan;
* private-key blocks are matched header by header and their ``-----END``
  line is looked up with a memoised ``str.find``, never with ``.*``;
* overlaps are resolved with a sort and a sweep (O(n log n) in the number of
  candidates), and :func:`redact` rescans its output until it is a fixed point.

This module is the public API only. The package, one job per module:

* ``model``: the kinds, ``Finding``, ``Redaction``, the marker, the candidate
  tuples and their resolution priorities;
* ``patterns``: the regex registry, the flood guard, shared expressions;
* ``heuristics``: judging a value (entropy, templates, placeholders, words);
* the detectors: ``private_keys``, ``tokens`` (prefixed tokens, Slack
  webhooks), ``urls`` (userinfo passwords), ``auth_headers``, ``keyed``
  (``key = value``, with ``key_names``) and ``formats`` (the other fixed
  formats: webhooks, SAS, docker auths, cookies, hashes, command lines);
* ``resolve``: candidates to non-overlapping findings, and the merge of two scans;
* ``evasions``: the normalised view (zero-width, wrapped, percent-encoded);
* ``scanner``: both scans, ``scan``, ``redact`` and ``contains_credential``.
"""

from __future__ import annotations

from app.security.credential_gate.model import (
    MARKER_PREFIX,
    CredentialKind,
    Finding,
    Redaction,
    marker,
)
from app.security.credential_gate.scanner import contains_credential, redact, scan

__all__ = [
    "MARKER_PREFIX",
    "CredentialKind",
    "Finding",
    "Redaction",
    "contains_credential",
    "marker",
    "redact",
    "scan",
]
