"""``missionctl``: the command line of Mission Control."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from app import __version__
from app.core.errors import ApiError
from app.core.migrations import MigrationError, migrate
from app.core.settings import DEFAULT_ENV_FILE, Settings, load_settings
from app.security.principal import Scope
from app.security.secrets import SecretError, server_key

T = TypeVar("T")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _with_db(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    from app.core.database import Database

    migrate(settings.database_path, settings.backups_path)
    db = Database(settings.database_path, readers=1, busy_timeout_ms=settings.busy_timeout_ms)
    await db.open()
    try:
        return await action(db)
    finally:
        await db.close()


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat it: "):
        raise SystemExit("missionctl: the passwords differ")
    return first


# commands --------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.core.logging import configure_logging
    from app.core.serve import (
        ListenRefused,
        build_server,
        check_listen,
        make_non_dumpable,
        run_server,
    )

    # First: no core dump, no ptrace by a same-uid process (an agent run), no
    # /proc/<pid>/mem or environ for it, before any key is read.
    make_non_dumpable()
    overrides: dict[str, Any] = {}
    if args.uds:
        overrides["listen_uds"] = Path(args.uds)
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.behind_proxy:
        overrides["behind_proxy"] = True
    if overrides:
        settings = settings.model_copy(update=overrides)
    try:
        where = check_listen(settings)
        server_key(settings.secrets_dir, settings.secret_key)
        migrate(settings.database_path, settings.backups_path)
    except (ListenRefused, SecretError, MigrationError) as exc:
        print(f"missionctl serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    from app.main import create_app

    server, notifier = build_server(create_app(settings), settings)
    from app.care.serving import serving_record

    with serving_record(settings):  # where it really listens, for `missionctl doctor`
        _run(run_server(server, notifier, where))
    return 0


def cmd_db_migrate(_: argparse.Namespace, settings: Settings) -> int:
    try:
        report = migrate(settings.database_path, settings.backups_path)
    except MigrationError as exc:
        print(f"missionctl db migrate: {exc}", file=sys.stderr)
        return 2
    if report.backup:
        print(f"backup taken before migrating: {report.backup}")
    applied = ", ".join(f"{v:04d}" for v in report.applied) or "none"
    print(f"schema version {report.current}; applied: {applied}")
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service
    from app.auth import store as auth_store

    key = server_key(settings.secrets_dir, settings.secret_key)

    async def action(db: Any) -> str | None:
        owner = await auth_store.user_by_name(db, args.owner)
        if owner is None or owner["disabled"]:
            return None
        created = await service.create_token(
            db,
            key,
            name=args.name,
            scope=Scope(args.scope),
            expires_days=args.expires_days,
            actor=_actor(),
            client="cli",
            owner_user_id=int(owner["id"]),
        )
        return created.token

    token = _run(_with_db(settings, action))
    if token is None:
        print(
            f"missionctl token create: --owner {args.owner!r} is not an active user; "
            "every token acts for a person (create one with `missionctl user create NAME`)",
            file=sys.stderr,
        )
        return 2
    print(token)
    return 0


def cmd_token_list(_: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service, store
    from app.core.pagination import PageParams

    async def action(db: Any) -> int:
        offset = 0
        print(f"{'ID':<12} {'SCOPE':<8} {'NAME':<24} {'EXPIRES':<28} {'LAST USED':<28} STATE")
        while True:
            rows, total = await store.list_tokens(db, PageParams(limit=200, offset=offset))
            for row in rows:
                view = service.token_view(row)
                state = "revoked" if view.revoked_at else "active"
                print(
                    f"{view.public_id:<12} {view.scope.value:<8} {view.name[:24]:<24}"
                    f" {view.expires_at or 'never':<28} {view.last_used_at or '-':<28} {state}"
                )
            offset += len(rows)
            if not rows or offset >= total:
                return 0

    return _run(_with_db(settings, action))


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service

    async def action(db: Any) -> None:
        await service.revoke_token(db, args.id, actor=_actor(), client="cli")

    _run(_with_db(settings, action))
    print(f"token {args.id} revoked")
    return 0


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service

    password = _read_password(args.password_stdin)

    async def action(db: Any) -> None:
        await service.create_user(
            db,
            username=args.name,
            password=password,
            role=Scope(args.role),
            actor=_actor(),
            client="cli",
        )

    _run(_with_db(settings, action))
    print(f"user {args.name} created with role {args.role}")
    return 0


def cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth import service

    password = _read_password(args.password_stdin)

    async def action(db: Any) -> None:
        await service.reset_password(
            db, username=args.name, password=password, actor=_actor(), client="cli"
        )

    _run(_with_db(settings, action))
    print(f"password of {args.name} changed; their sessions ended")
    return 0


def cmd_audit_verify(_: argparse.Namespace, settings: Settings) -> int:
    from app.security import audit

    report = _run(_with_db(settings, audit.verify))
    if report.ok:
        print(f"audit log intact: {report.checked} records verified")
        return 0
    print(
        f"audit log TAMPERED at record {report.first_bad_id}: {report.reason}"
        f" ({report.checked} records before it are intact)",
        file=sys.stderr,
    )
    return 1


def cmd_first_run(_: argparse.Namespace, settings: Settings) -> int:
    from app.cli_first_run import first_run

    return _run(_with_db(settings, lambda db: first_run(db, settings)))


def cmd_doctor(_: argparse.Namespace, settings: Settings) -> int:
    from app.doctor import run_doctor

    return run_doctor(settings)


def cmd_scrub(args: argparse.Namespace, _: Settings) -> int:
    from app.security.scrub import run_scrub

    return run_scrub(args.file, sys.stdin, sys.stdout, sys.stderr)


def cmd_backup_create(_: argparse.Namespace, settings: Settings) -> int:
    from app.backup.archive import BackupError, create_backup, rotate

    try:
        info = create_backup(settings.database_path, settings.backups_path)
    except BackupError as exc:
        print(f"missionctl backup create: {exc}", file=sys.stderr)
        return 1
    deleted = rotate(settings.backups_path, settings.backup_keep_daily, settings.backup_keep_weekly)
    print(f"backup written: {info.path} ({info.size} bytes, integrity ok)")
    if deleted:
        print(f"rotated out: {', '.join(p.name for p in deleted)}")
    return 0


def cmd_backup_offsite_done(_: argparse.Namespace, settings: Settings) -> int:
    from app.backup.offsite import record_offsite_copy

    moment = record_offsite_copy(settings.state_dir)
    print(f"off-Pi copy recorded: {moment.isoformat()}")
    return 0


def cmd_backup_list(_: argparse.Namespace, settings: Settings) -> int:
    from app.backup.archive import list_backups

    for info in list_backups(settings.backups_path):
        print(f"{info.taken_at.isoformat()}  {info.size:>12}  {info.path}")
    return 0


def cmd_backup_verify(args: argparse.Namespace, _: Settings) -> int:
    import shutil

    from app.backup.archive import BackupError, verify_backup

    try:
        copy = verify_backup(Path(args.file))
    except BackupError as exc:
        print(f"missionctl backup verify: {exc}", file=sys.stderr)
        return 1
    shutil.rmtree(copy.parent, ignore_errors=True)
    print(f"{args.file}: checksum and integrity ok")
    return 0


RESTORE_UNITS = ("mission-control-worker.service", "mission-control.service")


def cmd_backup_restore(args: argparse.Namespace, settings: Settings) -> int:
    from app.backup.archive import BackupError, restore_backup
    from app.backup.service_control import ServiceControl

    # the worker holds the database open too: stop it first, start it last
    units = [] if args.no_service else (args.service or list(RESTORE_UNITS))
    controls = [ServiceControl(unit) for unit in units]
    stopped = [control for control in controls if control.stop_if_running()]
    try:
        safety = restore_backup(Path(args.file), settings.database_path, settings.backups_path)
    except BackupError as exc:
        print(
            f"missionctl backup restore: {exc}; the live database was not changed", file=sys.stderr
        )
        for control in reversed(stopped):
            control.start()
        return 1
    migrate(settings.database_path, settings.backups_path)
    for control in reversed(stopped):
        control.start()
    print(f"restored {args.file}; the previous database is kept at {safety}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.core.logging import configure_logging
    from app.runner.worker import run_worker

    configure_logging(settings.log_level)
    return _run(run_worker(settings, name=args.name, once=args.once, stop_grace_s=args.stop_grace))


def cmd_runner_sandbox_check(args: argparse.Namespace, settings: Settings) -> int:
    """Probe the agents' sandbox as the worker does at start; JSON on stdout; exit 0
    only when confinement is enforced."""
    import json
    import os

    from app.runner.sandbox import probe

    mode = args.mode or settings.runner_sandbox
    report, _ = _run(
        probe(
            mode=mode,
            database_path=settings.database_path.absolute(),
            state_dir=settings.state_dir.absolute(),
            secrets_dir=settings.secrets_dir.absolute(),
            backups_dir=settings.backups_path.absolute(),
        )
    )
    result = {**report.as_dict(), "runs_allowed": report.runs_allowed, "kernel": os.uname().release}
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if report.enforced else 1


def cmd_notify_run(_: argparse.Namespace, settings: Settings) -> int:
    from app.core.logging import configure_logging
    from app.notifications.notifier import run_notifier

    configure_logging(settings.log_level)
    return run_notifier(settings)


def cmd_notify_check(args: argparse.Namespace, settings: Settings) -> int:
    from app.notifications.commands import check

    return check(settings, args.file)


def cmd_notify_hosts(args: argparse.Namespace, settings: Settings) -> int:
    from app.notifications.commands import hosts

    return hosts(settings, args.file)


def cmd_monitor(_: argparse.Namespace, settings: Settings) -> int:
    from app.care.monitor import monitor

    return _run(_with_db(settings, lambda db: monitor(db, settings)))


def cmd_support_bundle(args: argparse.Namespace, settings: Settings) -> int:
    from app.support.bundle import BundleError, write_bundle

    try:
        report = write_bundle(
            settings,
            Path(args.output) if args.output else None,
            log_lines=args.log_lines,
        )
    except (BundleError, OSError) as exc:
        print(f"missionctl support-bundle: {exc}", file=sys.stderr)
        return 1
    redacted = ", ".join(f"{k} {v}" for k, v in sorted(report.redacted.items())) or "nothing"
    print(f"support bundle written: {report.path} ({report.size} bytes, mode 0600)")
    print(f"members: {', '.join(report.members)}")
    print(f"redacted: {redacted}")
    for error in report.errors:
        print(f"not collected: {error}", file=sys.stderr)
    print("read it before you send it; it holds no row contents and no secrets it could find")
    return 0


# parser ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="missionctl", description="Mission Control")
    parser.add_argument("--version", action="version", version=f"missionctl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API (loopback or a unix socket)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--uds", help="listen on this unix socket instead of TCP")
    serve.add_argument(
        "--behind-proxy",
        action="store_true",
        help="a TLS-terminating proxy fronts this server (allows a non-loopback address)",
    )
    serve.set_defaults(func=cmd_serve)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    dbmigrate = db.add_parser("migrate", help="apply pending schema migrations")
    dbmigrate.add_argument(
        "--create",
        action="store_true",
        help="create the database when it does not exist at the default ./var path",
    )
    dbmigrate.set_defaults(func=cmd_db_migrate)

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = token.add_parser("create", help="create a token and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    create.add_argument(
        "--owner",
        required=True,
        metavar="USER",
        help="the user this token acts for (the two-person checks compare people)",
    )
    create.add_argument("--expires-days", type=int)
    create.set_defaults(func=cmd_token_create)
    token.add_parser("list", help="list tokens (never their secret)").set_defaults(
        func=cmd_token_list
    )
    revoke = token.add_parser("revoke", help="revoke a token by its public id")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_token_revoke)

    user = commands.add_parser("user", help="UI users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    ucreate = user.add_parser("create", help="create a user")
    ucreate.add_argument("name")
    ucreate.add_argument("--role", default="admin", choices=[s.value for s in Scope])
    ucreate.add_argument("--password-stdin", action="store_true")
    ucreate.set_defaults(func=cmd_user_create)
    passwd = user.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=cmd_user_passwd)

    audit = commands.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    audit.add_parser("verify", help="verify the hash chain").set_defaults(func=cmd_audit_verify)

    backup = commands.add_parser("backup", help="online backups").add_subparsers(
        dest="backup_command", required=True, metavar="ACTION"
    )
    backup.add_parser("create", help="snapshot, verify, compress, rotate").set_defaults(
        func=cmd_backup_create
    )
    backup.add_parser("list", help="backups, newest first").set_defaults(func=cmd_backup_list)
    backup.add_parser(
        "offsite-done", help="record that the backups were just copied off the Pi"
    ).set_defaults(func=cmd_backup_offsite_done)
    verify = backup.add_parser("verify", help="check a backup's checksum and integrity")
    verify.add_argument("file")
    verify.set_defaults(func=cmd_backup_verify)
    restore = backup.add_parser("restore", help="restore a backup (stops the service meanwhile)")
    restore.add_argument("file")
    restore.add_argument(
        "--service",
        action="append",
        help="a unit to stop meanwhile (repeatable; default: the worker and the API)",
    )
    restore.add_argument("--no-service", action="store_true", help="do not stop/start a unit")
    restore.set_defaults(func=cmd_backup_restore)

    worker = commands.add_parser("worker", help="claim queued conversations and run agents")
    worker.add_argument("--name", default="worker", help="worker id is <hostname>:<name>")
    worker.add_argument("--once", action="store_true", help="run at most one conversation")
    worker.add_argument(
        "--stop-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long a run in flight may finish before it is cancelled",
    )
    worker.set_defaults(func=cmd_worker)

    runner = commands.add_parser("runner", help="agent runner checks").add_subparsers(
        dest="runner_command", required=True, metavar="COMMAND"
    )
    sandbox_check = runner.add_parser(
        "sandbox-check",
        help="probe the agents' filesystem sandbox (JSON); exit 1 when it is not enforced",
    )
    sandbox_check.add_argument(
        "--mode",
        choices=["auto", "required", "off"],
        help="probe as if MC_RUNNER_SANDBOX were this (default: the configured value)",
    )
    sandbox_check.set_defaults(func=cmd_runner_sandbox_check)

    notify = commands.add_parser(
        "notify", help="the notifier: alerts that leave the Pi (docs/notifications.md)"
    ).add_subparsers(dest="notify_command", required=True, metavar="COMMAND")
    notify.add_parser("run", help="deliver pending notifications (the notifier)").set_defaults(
        func=cmd_notify_run
    )
    for name, func, text in (
        ("check", cmd_notify_check, "check the channels file; list the channel names"),
        ("hosts", cmd_notify_hosts, "the hosts the channels contact, one a line"),
    ):
        sub = notify.add_parser(name, help=text)
        sub.add_argument("--file", help="the channels file (default: MC_NOTIFY_CHANNELS_PATH)")
        sub.set_defaults(func=func)

    commands.add_parser("monitor", help="host checks that raise notifications").set_defaults(
        func=cmd_monitor
    )
    commands.add_parser("doctor", help="security self-check of this install").set_defaults(
        func=cmd_doctor
    )
    commands.add_parser(
        "first-run", help="create a local admin on an empty database and say how to log in"
    ).set_defaults(func=cmd_first_run)
    bundle = commands.add_parser(
        "support-bundle", help="write one redacted archive for asking for help"
    )
    bundle.add_argument(
        "--output", help="the archive to write (default: ./mission-control-support-...)"
    )
    bundle.add_argument(
        "--log-lines", type=int, metavar="N", help="journal lines to include (default 3000)"
    )
    bundle.set_defaults(func=cmd_support_bundle)
    scrub = commands.add_parser("scrub", help="redact credentials from a file or stdin")
    scrub.add_argument("file", nargs="?")
    scrub.set_defaults(func=cmd_scrub)
    return parser


#: where the appliance installs missionctl (provisioning/roles/app)
PI_MISSIONCTL = "/opt/mission-control/current/venv/bin/missionctl"
# Commands that never open (or create) the database.
NO_DATABASE = frozenset({"scrub", "doctor", "runner", "support-bundle"})
NO_DATABASE_NOTIFY = frozenset({"check", "hosts"})
NO_DATABASE_BACKUP = frozenset({"list", "verify", "restore"})


def missing_database(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why this command must not run: it would create a new, empty database at the
    built-in relative default (``./var/...``) because it was started from another
    folder, or because the Pi's settings could not be read. None when it may run.

    A database path that was configured (``MC_DATABASE_PATH`` in the environment or
    the env file) may be created; so may any path with ``db migrate --create``.
    """
    if args.command in NO_DATABASE or getattr(args, "create", False):
        return None
    if args.command == "backup" and args.backup_command in NO_DATABASE_BACKUP:
        return None
    if args.command == "notify" and args.notify_command in NO_DATABASE_NOTIFY:
        return None
    if "database_path" in settings.model_fields_set or settings.database_path.exists():
        return None
    where = settings.database_path.absolute()
    lines = [f"missionctl: there is no database at {where}, and none was configured."]
    pi_env = Path(DEFAULT_ENV_FILE)
    if pi_env.exists() and not os.access(pi_env, os.R_OK):
        lines.append(
            f"  This is a Mission Control appliance: its settings in {pi_env} are not"
            " readable by you. Run it as the service user:\n"
            f"    sudo -u mission-control {PI_MISSIONCTL} {args.command} ..."
        )
    else:
        lines.append(
            "  Run missionctl from the folder that holds var/ (where `make run` was started),"
            " or set MC_DATABASE_PATH (and MC_STATE_DIR) to the database you mean."
        )
    lines.append(
        "  To create a new, empty database here on purpose: missionctl db migrate --create"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except Exception as exc:  # settings errors are the user's to fix: say what, no trace
        print(f"missionctl: invalid settings: {exc}", file=sys.stderr)
        return 2
    refusal = missing_database(args, settings)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    try:
        result: int = args.func(args, settings)
    except ApiError as exc:
        print(f"missionctl: {exc.message}", file=sys.stderr)
        return 1
    except (SecretError, MigrationError) as exc:
        print(f"missionctl: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
