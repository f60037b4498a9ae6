"""The one settings object of the service (environment prefix ``MC_``)."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ENV_FILE = "/etc/mission-control/env"


def _env_file() -> str | None:
    """The env file to read: ``MC_ENV_FILE`` or the Pi default when it exists."""
    explicit = os.environ.get("MC_ENV_FILE")
    if explicit:
        return explicit
    # Under systemd the unit's EnvironmentFile= has already loaded it; a user
    # who may not read it (0640 root:mission-control) gets the environment only.
    # A unit without the group mission-control (the notifier) may not even look
    # into /etc/mission-control: is_file() raises PermissionError there.
    default = Path(DEFAULT_ENV_FILE)
    try:
        readable = default.is_file() and os.access(default, os.R_OK)
    except OSError:
        readable = False
    return DEFAULT_ENV_FILE if readable else None


class Settings(BaseSettings):
    """Every tunable of Mission Control. Secrets are ``SecretStr``."""

    model_config = SettingsConfigDict(
        env_prefix="MC_", extra="ignore", case_sensitive=False, validate_default=True
    )

    # storage
    database_path: Path = Path("./var/mission-control.db")
    state_dir: Path = Path("./var")
    backup_dir: Path | None = None
    reader_pool_size: Annotated[int, Field(ge=1, le=16)] = 3
    busy_timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 5_000
    # "full": a write acknowledged to a client survives a power cut (one fsync
    # per write transaction); "normal": fewer flushes, the last commits before a
    # power cut may be lost (docs/operations.md, "Power cuts")
    db_synchronous: Literal["full", "normal"] = "full"
    # the boot ID, set by the unit (Environment=MC_BOOT_ID=%b); unset: the kernel's
    boot_id: str | None = None

    # listening
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65_535)] = 8080
    listen_uds: Path | None = None
    behind_proxy: bool = False
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # "unix" in trusted_proxies trusts a unix-socket peer only when the kernel
    # says (SO_PEERCRED) it runs as this user (a name or a numeric uid): nginx's.
    # Any other local process that reaches the socket is a client like any other.
    trusted_proxy_user: Annotated[str, Field(min_length=1, max_length=64)] = "www-data"
    tls: bool = False

    # HTTP edge
    body_limit_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    request_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    rate_limit_per_client: Annotated[float, Field(gt=0)] = 50.0
    rate_limit_burst_per_client: Annotated[int, Field(ge=1)] = 200
    rate_limit_per_credential: Annotated[float, Field(gt=0)] = 50.0
    rate_limit_burst_per_credential: Annotated[int, Field(ge=1)] = 200
    login_rate_per_minute: Annotated[int, Field(ge=1)] = 10
    ticket_rate_per_minute: Annotated[int, Field(ge=1)] = 30
    login_failures_before_lockout: Annotated[int, Field(ge=1)] = 5
    # failures for one user name from all clients together before it is locked
    # out everywhere except the addresses it has logged in from
    login_failures_user_ceiling: Annotated[int, Field(ge=1)] = 50
    # refused requests without a credential: one audit row per client, route and window
    refused_anonymous_window_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    login_lockout_max_s: Annotated[int, Field(ge=1)] = 900

    # sessions and tokens
    session_idle_minutes: Annotated[int, Field(ge=1)] = 60
    session_absolute_hours: Annotated[int, Field(ge=1)] = 12
    token_max_expiry_days: Annotated[int, Field(ge=1)] = 3650
    # a step-up (password again, plus TOTP when enrolled) counts this long
    step_up_seconds: Annotated[int, Field(ge=30, le=3600)] = 300

    # approvals (docs/security-model.md, "One-owner approval"): a self-approval
    # is allowed when only one active admin exists, or always with
    # approval_one_owner; it is held this long, and any admin may veto it
    approval_one_owner: bool = False
    approval_cooling_off_seconds: Annotated[int, Field(ge=2, le=7 * 24 * 3600)] = 900
    secret_key: SecretStr | None = None
    last_used_flush_s: Annotated[float, Field(gt=0)] = 60.0

    # domain: mission ceilings (F17), agent quota defaults (F15)
    mission_max_cost_usd: Annotated[float, Field(gt=0)] = 10.0
    mission_max_steps: Annotated[int, Field(ge=1)] = 10
    mission_max_step_minutes: Annotated[int, Field(ge=1)] = 15
    mission_max_tokens: Annotated[int, Field(ge=1)] = 500_000
    agent_default_tokens_per_day: Annotated[int, Field(ge=0)] = 1_000_000
    agent_default_cost_usd_per_day: Annotated[float, Field(ge=0)] = 20.0
    agent_default_runs_per_day: Annotated[int, Field(ge=0)] = 200

    # live events (F3) and trigger rules (F8)
    event_ticket_ttl_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    event_streams_per_identity: Annotated[int, Field(ge=1, le=100)] = 4
    event_heartbeat_s: Annotated[float, Field(gt=0)] = 15.0
    event_poll_s: Annotated[float, Field(gt=0)] = 1.0
    rule_max_depth: Annotated[int, Field(ge=1, le=5)] = 3

    # notifications that leave the Pi: the notifier process (missionctl notify run)
    # reads its channels (apprise URLs) from this root-owned file (docs/notifications.md)
    notify_channels_path: Path = Path("/etc/mission-control-notify/notify.toml")
    notify_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    notify_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    notify_retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    notify_breaker_failures: Annotated[int, Field(ge=1, le=100)] = 5
    notify_breaker_cool_down_s: Annotated[float, Field(gt=0, le=86400)] = 300.0

    # retention (F22), in days
    retention_events_days: Annotated[int, Field(ge=1)] = 30
    retention_notifications_days: Annotated[int, Field(ge=1)] = 180
    retention_read_notifications_days: Annotated[int, Field(ge=1)] = 30
    retention_transcripts_days: Annotated[int, Field(ge=1)] = 90
    retention_interval_s: Annotated[float, Field(gt=0)] = 3600.0

    # health samples: one row per interval for the Health page's 24-hour charts
    health_sample_interval_s: Annotated[float, Field(ge=10, le=3600)] = 300.0
    health_sample_retention_days: Annotated[int, Field(ge=1, le=365)] = 7

    # runner (F11, F19, F27)
    profiles_path: Path = Path("/etc/mission-control/profiles.toml")
    worker_lease_s: Annotated[float, Field(gt=0)] = 60.0
    stale_run_minutes: Annotated[int, Field(ge=1)] = 30
    # per-run filesystem sandbox of agents (Landlock; docs/runner-confinement.md):
    # "required" refuses to run agents where it cannot be enforced (the Pi sets it),
    # "auto" uses it when the kernel has it and says "unconfined" in health otherwise,
    # "off" is an explicit opt-out
    runner_sandbox: Literal["auto", "required", "off"] = "auto"
    # how many model turns one run may take ({max_turns}, and the runtime's own flag)
    runner_max_turns: Annotated[int, Field(ge=1, le=1000)] = 50
    # the model price table (docs/capability.md); the bundled one when this is absent
    prices_path: Path = Path("/etc/mission-control/prices.toml")
    # the worker starts approved missions' steps by itself (docs/missions.md)
    missions_run_steps: bool = True

    # operations
    monitor_cert_path: Path = Path("/etc/mission-control-tls/server.crt")
    monitor_cert_warn_days: Annotated[int, Field(ge=1)] = 21
    monitor_disk_warn_percent: Annotated[float, Field(gt=0, lt=100)] = 85.0
    monitor_temperature_warn_celsius: Annotated[float, Field(gt=0)] = 75.0
    monitor_backup_max_age_hours: Annotated[int, Field(ge=1)] = 36
    vpn_status_path: Path = Path("/run/mission-control-vpn/peers.json")
    #: the root helper that adds and revokes peers for the VPN page (docs/vpn.md)
    vpn_helper_socket: Path = Path("/run/mission-control-vpn-helper.sock")
    backup_keep_daily: Annotated[int, Field(ge=1, le=365)] = 7
    backup_keep_weekly: Annotated[int, Field(ge=0, le=104)] = 4
    log_level: str = "INFO"
    watchdog_db_timeout_s: Annotated[float, Field(gt=0)] = 5.0

    # appliance care (docs/operations.md)
    # writes are refused (507) when the free space of the state file system is below
    # the smaller of these two: a percentage of its size and an absolute reserve
    disk_reserve_percent: Annotated[float, Field(ge=0, lt=100)] = 5.0
    disk_reserve_mb: Annotated[int, Field(ge=0)] = 200
    disk_check_cache_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    disk_notify_every_s: Annotated[float, Field(gt=0)] = 3600.0
    # hosts where no source can tell whether the clock is synchronised
    clock_assume_synchronised: bool = False
    # release layout: <release_root>/releases/<version>, links current and previous
    release_root: Path = Path("/opt/mission-control")
    repairs_cache_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    worker_heartbeat_quiet_max_s: Annotated[float, Field(gt=0, le=600)] = 120.0
    support_log_lines: Annotated[int, Field(ge=0, le=100_000)] = 3000
    support_audit_records: Annotated[int, Field(ge=0, le=10_000)] = 200

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "unix":
                ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def backups_path(self) -> Path:
        return self.backup_dir or (self.state_dir / "backups")


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, the env file and explicit overrides."""
    return Settings(_env_file=_env_file(), **overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
