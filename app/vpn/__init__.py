"""The VPN peers page: peers listed, added and revoked through the root helper
(scripts/mc-vpn-helper); design in docs/vpn.md."""
