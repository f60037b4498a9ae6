"""The VPN peer status file, read for the Settings page and for the VPN page when
the root helper does not answer (``app/vpn/peers.py``).

``mc-vpn status --json`` runs every minute as root (``mission-control-vpn-status``)
and writes ``settings.vpn_status_path``; the API only reads that file. It holds
names, addresses, handshake times and byte counts: never a key. A missing,
oversized or malformed file is reported as such, never as an error page.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

MAX_STATUS_BYTES = 256 * 1024
STALE_AFTER_S = 300


class Peer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(max_length=64)]
    address: Annotated[str, StringConstraints(max_length=64)]
    latest_handshake: Annotated[int, Field(ge=0)] = 0
    rx_bytes: Annotated[int, Field(ge=0)] = 0
    tx_bytes: Annotated[int, Field(ge=0)] = 0


class PeerStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    interface: Annotated[str, StringConstraints(max_length=32)] = "wg0"
    up: bool = False
    generated_at: Annotated[int, Field(ge=0)] = 0
    peers: Annotated[list[Peer], Field(max_length=1000)] = []


class PeerReport(BaseModel):
    """What the page shows: the status, or why there is none."""

    status: PeerStatus | None = None
    problem: str | None = None
    age_s: int | None = None
    stale: bool = False
    now: int = 0


def read_peer_status(path: Path, now: float | None = None) -> PeerReport:
    moment = int(time.time() if now is None else now)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        return PeerReport(problem="missing", now=moment)
    except OSError:
        return PeerReport(problem="unreadable", now=moment)
    if len(raw) > MAX_STATUS_BYTES:
        return PeerReport(problem="too_large", now=moment)
    try:
        status = PeerStatus.model_validate_json(raw)
    except ValidationError:
        return PeerReport(problem="malformed", now=moment)
    age = max(0, moment - status.generated_at) if status.generated_at else None
    return PeerReport(
        status=status,
        age_s=age,
        stale=age is None or age > STALE_AFTER_S,
        now=moment,
    )
