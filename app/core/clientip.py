"""Which address a request came from; forwarded headers only from trusted proxies.

A unix-socket peer is trusted (``"unix"`` in ``trusted_proxies``) only when its
uid, read by the server from the kernel with ``SO_PEERCRED`` when the
connection is accepted (``app/core/serve.py``), is the proxy's
(``trusted_proxy_user``, nginx's ``www-data`` by default). Anything else that
can reach the socket (an agent run, another local user) has its
``X-Forwarded-For`` ignored and is the client ``unix`` itself.
"""

from __future__ import annotations

import ipaddress
import pwd
import socket
import struct
from collections.abc import Sequence
from typing import Any

from starlette.types import Scope

UNIX_PEER = "unix"
#: scope["extensions"][PEER_CREDENTIALS] = {"uid": int}, set by the server for unix peers
PEER_CREDENTIALS = "mission_control.peer_credentials"
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket | None) -> int | None:
    """The uid of the process at the other end of a unix socket, or None."""
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    _, uid, _ = _UCRED.unpack(raw)
    return int(uid)


def resolve_uid(user: str) -> int | None:
    """A user name or a numeric uid; None when no such user exists (trust nobody)."""
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def scope_peer_uid(scope: Scope) -> int | None:
    extensions: Any = scope.get("extensions") or {}
    info = extensions.get(PEER_CREDENTIALS)
    if isinstance(info, dict) and isinstance(info.get("uid"), int):
        return int(info["uid"])
    return None


class ProxyTrust:
    def __init__(self, trusted: Sequence[str], proxy_user: str = "www-data") -> None:
        self._unix = UNIX_PEER in trusted
        self._proxy_uid = resolve_uid(proxy_user) if self._unix else None
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted if t != UNIX_PEER]

    def is_trusted(self, peer: str) -> bool:
        if peer == UNIX_PEER:
            return False  # only through _unix_peer_trusted, with its credentials
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _unix_peer_trusted(self, scope: Scope) -> bool:
        if not self._unix or self._proxy_uid is None:
            return False
        uid = scope_peer_uid(scope)
        return uid is not None and uid == self._proxy_uid

    def resolve(self, scope: Scope) -> tuple[str, str]:
        """Return (client address, scheme) for a request."""
        client = scope.get("client")
        peer = client[0] if client and client[0] else UNIX_PEER
        scheme = str(scope.get("scheme", "http"))
        trusted = self._unix_peer_trusted(scope) if peer == UNIX_PEER else self.is_trusted(peer)
        if not trusted:
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
