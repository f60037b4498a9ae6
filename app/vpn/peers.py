"""The peers the page lists: asked of the root helper live, or, when the helper
cannot be reached, read from the status file mission-control-vpn-status writes
every minute (app/vpn/status.py). Names, addresses, handshakes, bytes: never a key."""

from __future__ import annotations

import time

from pydantic import BaseModel, ValidationError

from app.core.settings import Settings
from app.vpn.helper import HelperError, ask
from app.vpn.status import PeerReport, PeerStatus, read_peer_status


class PeersView(BaseModel):
    report: PeerReport
    #: "helper" (asked just now) or "status_file" (the minute's export)
    source: str
    #: why the helper could not answer (the page can still list peers)
    helper_problem: str | None = None


async def peers_view(settings: Settings) -> PeersView:
    try:
        answer = await ask(settings.vpn_helper_socket, "list")
        status = PeerStatus.model_validate(answer.get("status"))
    except HelperError as exc:
        problem = exc.message
    except ValidationError:
        problem = "the VPN helper's list is not in the expected format"
    else:
        now = int(time.time())
        return PeersView(report=PeerReport(status=status, age_s=0, now=now), source="helper")
    report = read_peer_status(settings.vpn_status_path)
    return PeersView(report=report, source="status_file", helper_problem=problem)
