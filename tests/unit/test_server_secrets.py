"""No default secrets: keys are generated 0600; placeholders stop start-up (F23)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app.core.settings import Settings
from app.main import create_app
from app.security.secrets import SecretError, load_or_create_key, server_key


def test_key_is_generated_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "secrets", "server.key")
    assert len(first) >= 32
    assert (tmp_path / "secrets" / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert load_or_create_key(tmp_path / "secrets", "server.key") == first


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, "server.key")
    (tmp_path / "server.key").chmod(0o644)
    with pytest.raises(SecretError, match="readable by others"):
        load_or_create_key(tmp_path, "server.key")


@pytest.mark.parametrize(
    "value", ["change-me", "CHANGE_IN_PROD", "secret", "", "x" * 64, "short-but-random-9f3"]
)
def test_placeholder_or_weak_key_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "server.key"
    path.write_text(value)
    path.chmod(0o600)
    with pytest.raises(SecretError):
        load_or_create_key(tmp_path, "server.key")
    with pytest.raises(SecretError):
        server_key(tmp_path / "other", SecretStr(value))


async def test_app_refuses_to_start_with_a_placeholder_secret(tmp_path: Path) -> None:
    settings = Settings(
        database_path=tmp_path / "db",
        state_dir=tmp_path / "state",
        secret_key=SecretStr("change-me-in-production-please-0000000000"),
    )
    app = create_app(settings)
    with pytest.raises(SecretError):
        async with app.router.lifespan_context(app):
            pass


def test_settings_never_print_the_secret() -> None:
    settings = Settings(secret_key=SecretStr("a" * 10 + "real-secret-value-123456789"))
    assert "real-secret-value" not in repr(settings)
    assert "real-secret-value" not in str(settings.model_dump())
