"""Live run output: what an agent writes, batched into events while it runs.

The runtime's reader hands over pieces as they arrive (text, tool calls, tool
results); :class:`LiveOutput` holds them in memory and the worker's guard turns
what has gathered into one ``conversation.output`` event per flush (about once
a second): no database write per piece (the SD card). Every batch goes through
the credential gate (and the profile's exact credential values) before it is
written. A run's live output is bounded (``MAX_LIVE_BYTES``); past that one
marker says so and the rest is only in the final transcript.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.runner.gate import output_gate

MAX_LIVE_BYTES = 1024 * 1024
MAX_BATCH_CHARS = 32 * 1024
MAX_PIECE_CHARS = 4 * 1024


@dataclass
class LiveOutput:
    """The pending pieces of one run's output, and how much was sent."""

    secret_values: Iterable[str] = ()
    sent_chars: int = 0
    seq: int = 0
    capped: bool = False
    _pending: list[tuple[str, str]] = field(default_factory=list)
    _pending_chars: int = 0

    def add(self, kind: str, text: str) -> None:
        """A piece of output (``text``, ``tool``, ``result``); merged with the last
        piece of the same kind."""
        if self.capped or not text:
            return
        if self.sent_chars + self._pending_chars >= MAX_LIVE_BYTES:
            self.capped = True
            self._pending.append(("note", "[live output stops here: see the transcript]"))
            return
        text = text[:MAX_PIECE_CHARS]
        if self._pending and self._pending[-1][0] == kind and kind == "text":
            self._pending[-1] = (kind, self._pending[-1][1] + text)
        else:
            self._pending.append((kind, text))
        self._pending_chars += len(text)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def drain(self) -> dict[str, Any] | None:
        """The next batch as an event payload (gated), or None when nothing waits."""
        if not self._pending:
            return None
        gated = output_gate(self.secret_values)
        chunks: list[dict[str, str]] = []
        size = 0
        while self._pending and size < MAX_BATCH_CHARS:
            kind, text = self._pending.pop(0)
            self._pending_chars -= len(text)
            text = gated(text)
            chunks.append({"kind": kind, "text": text})
            size += len(text)
        self.sent_chars += size
        self.seq += 1
        return {"seq": self.seq, "chunks": chunks}
