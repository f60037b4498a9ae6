"""Request and response bodies of the auth, token and user endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.security.principal import Scope

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
TokenName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=100_000)


class LoginRequest(StrictModel):
    username: Annotated[str, StringConstraints(max_length=64)]
    password: Password
    #: the second factor, for a user who enrolled one (app/auth/totp.py)
    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None


class SessionInfo(BaseModel):
    username: str
    role: Scope
    csrf_token: str


class PasswordChange(StrictModel):
    current_password: Password
    new_password: Password


class TokenCreate(StrictModel):
    name: TokenName
    scope: Scope
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class TokenView(BaseModel):
    public_id: str
    name: str
    scope: Scope
    created_by: str
    owner: str | None = Field(
        default=None, description="the user this token acts for; None for a legacy token"
    )
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenCreated(TokenView):
    token: str = Field(description="shown once; store it now, it cannot be shown again")


class UserCreate(StrictModel):
    username: Username
    password: Password
    role: Scope = Scope.READ


class UserUpdate(StrictModel):
    role: Scope | None = None
    disabled: bool | None = None


class PasswordReset(StrictModel):
    new_password: Password


class UserView(BaseModel):
    id: int
    username: str
    role: Scope
    disabled: bool
    created_at: str
    updated_at: str
    password_changed_at: str
