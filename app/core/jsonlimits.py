"""Refuse JSON bodies with too many keys before they are parsed and validated.

A 1 MiB body can hold about 90,000 unknown keys; validated against a model
that forbids extra fields, it produced one error per key (an 8.4 MB answer)
and held the event loop for most of a second. The edge middleware therefore
counts the keys of every request body while it is still bytes and refuses a
body with more than ``MAX_JSON_KEYS`` (400 ``too_many_keys``), whether or not
the request carries a credential.

Counting is linear and stops early:

* a key is followed by ``:``, so a body with at most ``MAX_JSON_KEYS`` colons
  (the common case, one ``bytes.count``) cannot have too many keys;
* otherwise the strings of the body are matched one after the other, each as a
  whole (possessive, so a string is read once); the first ``"`` of a JSON text
  opens a string and so does every ``"`` after a string ends, so the strings
  followed by ``:`` are exactly the keys. The count stops at the limit.

A body that is not valid JSON may be miscounted; it is refused as such by the
parser afterwards, with a single error.
"""

from __future__ import annotations

import itertools
import re

# Generous for every request model of the API (the largest, a rule, has a
# payload of at most 50 keys); far below what makes validation expensive.
MAX_JSON_KEYS = 1000

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"(?P<colon>[ \t\r\n]*+:)?', re.DOTALL)


def too_many_keys(body: bytes, limit: int = MAX_JSON_KEYS) -> bool:
    """True when ``body`` (JSON) holds more than ``limit`` object keys in all."""
    if body.count(b":") <= limit:
        return False
    keys = 0
    for match in _STRING.finditer(body):
        if match.group("colon") is not None:
            keys += 1
            if keys > limit:
                return True
    return False


def count_keys(body: bytes, stop: int) -> int:
    """The number of keys of ``body``, counting at most ``stop`` (for tests and benches)."""
    found = (m for m in _STRING.finditer(body) if m.group("colon") is not None)
    return sum(1 for _ in itertools.islice(found, stop))
