"""Which address a request came from; forwarded headers only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

UNIX_PEER = "unix"


class ProxyTrust:
    def __init__(self, trusted: Sequence[str]) -> None:
        self._unix = UNIX_PEER in trusted
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted if t != UNIX_PEER]

    def is_trusted(self, peer: str) -> bool:
        if peer == UNIX_PEER:
            return self._unix
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def resolve(self, scope: Scope) -> tuple[str, str]:
        """Return (client address, scheme) for a request."""
        client = scope.get("client")
        peer = client[0] if client and client[0] else UNIX_PEER
        scheme = str(scope.get("scheme", "http"))
        if not self.is_trusted(peer):
            return peer, scheme
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        forwarded = headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        address = peer
        while hops:
            hop = hops.pop()
            address = hop
            if not self.is_trusted(hop):
                break
        proto = headers.get("x-forwarded-proto", "").strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        return address, scheme
