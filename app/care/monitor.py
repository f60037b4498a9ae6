"""``missionctl monitor``: run the checks and notify through the app."""

from __future__ import annotations

from datetime import UTC, datetime

from app.care.checks import due, run_checks
from app.care.repairs import database_findings
from app.core.database import Database
from app.core.findings import Finding
from app.core.settings import Settings
from app.events.transaction import transaction
from app.events.types import Category, Severity
from app.security.secrets import server_key
from app.wiring import build_context


def _text(finding: Finding) -> str:
    return f"{finding.body} Fix: {finding.fix}" if finding.fix else finding.body


async def monitor(db: Database, settings: Settings) -> int:
    findings = run_checks(settings) + await database_findings(db, settings)
    for finding in findings:
        print(f"{finding.severity.upper():8} {finding.check}: {finding.title}. {_text(finding)}")
    if not findings:
        print("all checks ok")
    announce = due(settings.state_dir / "monitor-state.json", findings, datetime.now(UTC))
    if announce:
        ctx = build_context(settings, db, server_key(settings.secrets_dir, settings.secret_key))
        async with transaction(ctx, "system:monitor", "local") as tx:
            for finding in announce:
                await tx.notify(
                    Category.SYSTEM, Severity(finding.severity), finding.title, _text(finding)
                )
    return 1 if any(f.severity == "critical" for f in findings) else 0
