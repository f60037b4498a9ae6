"""``missionctl scrub [FILE]``: redact credentials from a file or stdin (F14).

The redacted text goes to stdout, a per-kind summary to stderr
(``scrub: github_token: 2`` or ``scrub: clean``). Exit status: 0 clean,
1 something was redacted, 2 the input could not be read (or the output not
written). The secrets themselves are never written to stderr.
"""

from __future__ import annotations

from typing import TextIO

from app.security.credential_gate import CredentialKind, redact

# The whole input is held in memory (a secret may span any chunk boundary),
# so it is bounded.
MAX_SCRUB_BYTES = 64 * 1024 * 1024


class _InputError(Exception):
    """The input cannot be scrubbed; the message is safe to print."""


def _decode(data: bytes, name: str, stderr: TextIO) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        stderr.write(f"scrub: warning: {name} is not valid UTF-8; invalid bytes replaced\n")
        return data.decode("utf-8", errors="replace")


def _read(path: str | None, stdin: TextIO, stderr: TextIO) -> str:
    if path is None or path == "-":
        buffer = getattr(stdin, "buffer", None)
        try:
            if buffer is not None:
                data = buffer.read(MAX_SCRUB_BYTES + 1)
                if len(data) > MAX_SCRUB_BYTES:
                    raise _InputError(f"stdin is larger than {MAX_SCRUB_BYTES} bytes")
                return _decode(data, "stdin", stderr)
            text = stdin.read(MAX_SCRUB_BYTES + 1)
        except UnicodeDecodeError as exc:
            raise _InputError("stdin is not valid UTF-8 text") from exc
        except OSError as exc:
            raise _InputError(f"cannot read stdin: {exc.strerror or type(exc).__name__}") from exc
        if len(text) > MAX_SCRUB_BYTES:
            raise _InputError(f"stdin is larger than {MAX_SCRUB_BYTES} bytes")
        return text
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SCRUB_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _InputError(f"cannot read {path}: {reason}") from exc
    if len(data) > MAX_SCRUB_BYTES:
        raise _InputError(f"cannot read {path}: larger than {MAX_SCRUB_BYTES} bytes")
    return _decode(data, path, stderr)


def run_scrub(path: str | None, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Redact ``path`` (or stdin when ``path`` is None or ``-``) to ``stdout``."""
    try:
        text = _read(path, stdin, stderr)
    except _InputError as exc:
        stderr.write(f"scrub: {exc}\n")
        return 2
    result = redact(text)
    try:
        stdout.write(result.text)
        stdout.flush()
    except OSError as exc:
        stderr.write(f"scrub: cannot write output: {exc.strerror or type(exc).__name__}\n")
        return 2
    if not result.found:
        stderr.write("scrub: clean\n")
        return 0
    for kind in CredentialKind:
        count = result.counts.get(kind, 0)
        if count:
            stderr.write(f"scrub: {kind.value}: {count}\n")
    return 1
