"""Which command profiles this worker may run (F27): host configuration, loaded once.

``settings.profiles_path`` is used when it exists; a file under ``/etc`` (the Pi's
``/etc/mission-control/profiles.toml``) must then be owned by root, and so must the
credential files its profiles name. When the configured file does not exist, the
bundled ``profiles.example.toml`` is used (development: ``make run``, tests); that
fallback is logged, so a Pi whose profiles file went missing says so.

Nothing here comes from the API or the database: an agent row only *names* a profile.
A change to the file takes effect when the worker restarts.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.capability.model import ProfileTraits
from app.core.settings import Settings
from app.runner.environment import ChildEnv, build_child_env
from app.runner.login import Login, load_login
from app.runner.profiles import EXAMPLE_PROFILES_PATH, Profile, ProfileError, load_profiles

log = logging.getLogger("mission_control.runner.catalog")

_ETC = Path("/etc")


def under_etc(path: Path) -> bool:
    """True when ``path`` is in ``/etc``, literally or once symlinks are resolved."""
    literal = Path(os.path.abspath(path))  # noqa: PTH100 - normalise '..' without resolving
    candidates = [literal]
    with contextlib.suppress(OSError):
        candidates.append(path.resolve())
    return any(candidate == _ETC or _ETC in candidate.parents for candidate in candidates)


@dataclass(frozen=True)
class Catalog:
    """The loaded profiles and where they came from."""

    path: Path
    profiles: Mapping[str, Profile]
    #: the profiles file had to be root-owned (it lives under /etc)
    root_owned: bool
    bundled: bool

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    def child_env(self, profile: Profile) -> ChildEnv:
        """The allow-listed environment of one run; raises ``CredentialError``."""
        require_root = self.root_owned or (
            profile.credential_file is not None and under_etc(profile.credential_file)
        )
        return build_child_env(profile, require_root_owned=require_root)

    def login(self, profile: Profile) -> Login | None:
        """The profile's subscription login, checked (always root-owned); None when it
        names none. Raises :class:`~app.runner.login.LoginError` with the reason."""
        if profile.login_dir is None:
            return None
        return load_login(profile.login_dir, profile.runtime)


def load_catalog(settings: Settings) -> Catalog:
    """Load the profiles; raises :class:`~app.runner.profiles.ProfileError` with the reason."""
    configured = settings.profiles_path
    if configured.exists() or configured.is_symlink():
        root_owned = under_etc(configured)
        profiles = load_profiles(configured, require_root_owned=root_owned)
        return Catalog(configured, profiles, root_owned=root_owned, bundled=False)
    # MC_PROFILES_PATH set (the Pi) but missing is a problem; the built-in default
    # missing is the development setup (make run), where the bundled file is meant
    missing_configured = "profiles_path" in settings.model_fields_set
    log.log(
        logging.WARNING if missing_configured else logging.INFO,
        "profiles file not found; using the bundled example profiles",
        extra={"configured": str(configured), "bundled": str(EXAMPLE_PROFILES_PATH)},
    )
    profiles = load_profiles(EXAMPLE_PROFILES_PATH, require_root_owned=False)
    return Catalog(EXAMPLE_PROFILES_PATH, profiles, root_owned=False, bundled=True)


@dataclass(frozen=True)
class ProfilesStatus:
    """The host's profiles as the worker would load them: for ``missionctl doctor``,
    the health report and the agent form (which profiles and runtimes exist)."""

    path: Path
    bundled: bool
    #: the profiles by name, sorted; empty when the file is refused
    profiles: tuple[tuple[str, Profile], ...]
    #: why the file was refused (names the profile, the key and the fix); None: loaded
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            # the built-in example lives in the installed code: name it, not its path
            "path": "(built in)" if self.bundled else str(self.path),
            "bundled": self.bundled,
            "error": self.error,
            "profiles": [
                {"name": name, "runtime": profile.runtime, "login": profile.login_dir is not None}
                for name, profile in self.profiles
            ],
        }


def profiles_status(settings: Settings) -> ProfilesStatus:
    """Load the profiles by the worker's own rules (a file under /etc must be
    root-owned; the bundled example when the configured file does not exist);
    cached until the file changes. Never raises."""
    configured = settings.profiles_path
    path, root_owned, bundled = configured, under_etc(configured), False
    if not (configured.exists() or configured.is_symlink()):
        path, root_owned, bundled = EXAMPLE_PROFILES_PATH, False, True
    try:
        info = path.lstat()
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError as exc:
        return ProfilesStatus(path, bundled, (), f"profiles file {path} cannot be read: {exc}")
    profiles, error = _load_cached(path, root_owned, stamp)
    return ProfilesStatus(path, bundled, profiles, error)


def profile_traits(settings: Settings) -> dict[str, ProfileTraits]:
    """What each of the host's profiles can do, loaded by the worker's own rules (a
    file under /etc must be root-owned), for the API's capability decisions.
    Empty when the file is refused: every agent then counts as able to run
    commands (:func:`app.capability.model.agent_capability` fails closed) and no
    agent can be given a profile."""
    status = profiles_status(settings)
    return {name: profile.traits(name) for name, profile in status.profiles}


@functools.lru_cache(maxsize=8)
def _load_cached(
    path: Path, root_owned: bool, stamp: tuple[int, int, int]
) -> tuple[tuple[tuple[str, Profile], ...], str | None]:
    try:
        profiles = load_profiles(path, require_root_owned=root_owned)
    except ProfileError as exc:
        log.warning("profiles file refused", extra={"reason": str(exc)})
        return (), str(exc)
    return tuple(sorted(profiles.items())), None
