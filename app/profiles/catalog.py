"""Which command profiles this host runs (F27): host configuration, loaded once.

One rule, :func:`profiles_source`, decides which file is used and how it must be
read, for the worker (:func:`load_catalog`) and for the API, the doctor and the
health report (:func:`profiles_status`) alike: ``settings.profiles_path`` when it
exists, and then a file under ``/etc`` (the Pi's ``/etc/mission-control/profiles.toml``)
must be owned by root, and so must the credential files its profiles name. When the
configured file does not exist, the bundled ``profiles.example.toml`` is used
(development: ``make run``, tests); that fallback is logged, so a Pi whose profiles
file went missing says so. A file the worker refuses is refused by the API too, with
the reason (:meth:`ProfilesStatus.public_error`), never taken for an unknown profile.

Nothing here comes from the API or the database: an agent row only *names* a profile.
A change to the file takes effect when the worker restarts.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.capability.model import ProfileTraits
from app.core.settings import Settings
from app.profiles.environment import ChildEnv, build_child_env
from app.profiles.login import Login, load_login
from app.profiles.profiles import (
    EXAMPLE_PROFILES_PATH,
    Profile,
    ProfileError,
    load_profiles,
    under_etc,
)

log = logging.getLogger("mission_control.profiles.catalog")

#: an absolute path left in a refusal's words (the API names none)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/[^\s'\";,()]+")


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
        names none. Raises :class:`~app.profiles.login.LoginError` with the reason."""
        if profile.login_dir is None:
            return None
        return load_login(profile.login_dir, profile.runtime)


@dataclass(frozen=True)
class ProfilesSource:
    """Which profiles file this host uses and how it must be read."""

    path: Path
    #: the file and its directory must be owned by root (the file lives under /etc)
    root_owned: bool
    #: the bundled example, because the configured file does not exist
    bundled: bool
    #: the bundled example although MC_PROFILES_PATH names a file (the Pi): a problem
    missing_configured: bool = False


def profiles_source(settings: Settings) -> ProfilesSource:
    """The one rule for the profiles file, followed by the worker and the API: the
    configured file when it exists (root-owned when under /etc, literally or once
    symlinks are resolved), else the bundled example (never root-owned: it ships
    with the code)."""
    configured = settings.profiles_path
    if configured.exists() or configured.is_symlink():
        return ProfilesSource(configured, root_owned=under_etc(configured), bundled=False)
    # MC_PROFILES_PATH set (the Pi) but missing is a problem; the built-in default
    # missing is the development setup (make run), where the bundled file is meant
    missing_configured = "profiles_path" in settings.model_fields_set
    return ProfilesSource(
        EXAMPLE_PROFILES_PATH, root_owned=False, bundled=True, missing_configured=missing_configured
    )


def load_catalog(settings: Settings) -> Catalog:
    """Load the profiles (:func:`profiles_source`); raises
    :class:`~app.profiles.profiles.ProfileError` with the reason."""
    source = profiles_source(settings)
    if source.bundled:
        log.log(
            logging.WARNING if source.missing_configured else logging.INFO,
            "profiles file not found; using the bundled example profiles",
            extra={"configured": str(settings.profiles_path), "bundled": str(source.path)},
        )
    profiles = load_profiles(source.path, require_root_owned=source.root_owned)
    return Catalog(source.path, profiles, root_owned=source.root_owned, bundled=source.bundled)


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

    def public_error(self) -> str | None:
        """Why the file is refused, in words that name no file path (for an API
        answer; ``missionctl doctor`` on the host names the file); None: loaded."""
        if self.error is None:
            return None
        text = self.error.replace(f"profiles file {self.path}", "the profiles file")
        text = text.replace(f"{self.path.parent} holding", "holding")
        text = text.replace(str(self.path), "the profiles file")
        return _ABSOLUTE_PATH.sub("(a path)", text)

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
    """Load the profiles by the worker's own rule (:func:`profiles_source`); cached
    until the file changes. Never raises."""
    source = profiles_source(settings)
    path, bundled = source.path, source.bundled
    try:
        # what the rule reads: a chown or chmod of the file or its directory (which
        # moves no mtime) is seen at once, like the worker's next start would
        info, folder = path.lstat(), path.absolute().parent.stat()
        stamp = (
            *(info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino),
            *(folder.st_ctime_ns, folder.st_uid, folder.st_mode),
        )
    except OSError as exc:
        return ProfilesStatus(path, bundled, (), f"profiles file {path} cannot be read: {exc}")
    profiles, error = _load_cached(path, source.root_owned, stamp)
    return ProfilesStatus(path, bundled, profiles, error)


def profile_traits(settings: Settings) -> dict[str, ProfileTraits]:
    """What each of the host's profiles can do, loaded by the worker's own rule
    (:func:`profiles_source`), for the API's capability decisions.
    Empty when the file is refused: every agent then counts as able to run
    commands (:func:`app.capability.model.agent_capability` fails closed) and no
    agent can be given a profile."""
    status = profiles_status(settings)
    return {name: profile.traits(name) for name, profile in status.profiles}


@functools.lru_cache(maxsize=8)
def _load_cached(
    path: Path, root_owned: bool, stamp: tuple[int, ...]
) -> tuple[tuple[tuple[str, Profile], ...], str | None]:
    try:
        profiles = load_profiles(path, require_root_owned=root_owned)
    except ProfileError as exc:
        log.warning("profiles file refused", extra={"reason": str(exc)})
        return (), str(exc)
    return tuple(sorted(profiles.items())), None
