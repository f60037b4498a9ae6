"""The API listens on loopback or a unix socket unless a proxy is declared (F2)."""

from __future__ import annotations

import pytest

from app.core.serve import ListenRefused, check_listen
from app.core.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_is_allowed(host: str) -> None:
    assert host in check_listen(Settings(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.6.0.1", "example.org"])
def test_other_addresses_are_refused(host: str) -> None:
    with pytest.raises(ListenRefused, match="refusing"):
        check_listen(Settings(host=host))


def test_proxy_needs_trusted_addresses() -> None:
    with pytest.raises(ListenRefused, match="MC_TRUSTED_PROXIES"):
        check_listen(Settings(host="0.0.0.0", behind_proxy=True))
    where = check_listen(Settings(host="0.0.0.0", behind_proxy=True, trusted_proxies=["10.0.0.1"]))
    assert "behind proxy" in where


def test_default_is_loopback() -> None:
    assert check_listen(Settings()) == "http://127.0.0.1:8080"


def test_unix_socket_is_allowed(tmp_path: object) -> None:
    assert check_listen(Settings(listen_uds="/run/mission-control/api.sock")).startswith("unix:")


def test_trusted_proxies_alone_do_not_open_a_public_address() -> None:
    with pytest.raises(ListenRefused, match="unless a TLS-terminating proxy"):
        check_listen(Settings(host="0.0.0.0", trusted_proxies=["10.0.0.1"]))
