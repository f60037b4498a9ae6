"""Helpers for the provisioning tests: repo paths, tool checks, network
namespaces, and a tiny Jinja2 renderer that reads the roles' own defaults, so
that the tests check what the playbook would install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "provisioning"
ROLES = PROVISIONING / "roles"
SYSTEMD = REPO / "systemd"
NGINX = REPO / "nginx"
WIREGUARD = REPO / "wireguard"
SYSTEM_PYTHON = "/usr/bin/python3"


def need_tool(*names: str) -> None:
    """Skip the calling test unless every named program is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (scripts/install-test-deps.sh installs it as root)"
        )


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs the suite as root)")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(cmd, check=False, **kwargs)


def load_yaml(path: Path) -> Any:
    """Parse YAML with the system python's PyYAML (installed with Ansible);
    the project venv deliberately has no YAML parser."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip("no /usr/bin/python3 to read YAML with")
    proc = run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            str(path),
        ]
    )
    if proc.returncode != 0:
        if "No module named 'yaml'" in proc.stderr:
            pytest.skip("python3-yaml not installed (it comes with ansible)")
        raise AssertionError(f"cannot parse {path}: {proc.stderr}")
    return json.loads(proc.stdout)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y"}
    return bool(value)


def _environment(*, strict: bool = True) -> jinja2.Environment:
    # Ansible's template module defaults: trim_blocks on, lstrip_blocks off.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["bool"] = _to_bool
    env.filters["to_json"] = json.dumps
    return env


def resolve_vars(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Role defaults with overrides, their "{{ ... }}" values expanded the way
    Ansible expands them (repeatedly, until nothing changes). Names only
    Ansible knows (playbook_dir, facts) expand to "" here: the templates under
    test must not need them, and StrictUndefined in render_template catches
    any template that does."""
    env = _environment(strict=False)
    merged: dict[str, Any] = {**defaults, **overrides}

    def expand(value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, str) and "{{" in value:
            return env.from_string(value).render(context)
        if isinstance(value, list):
            return [expand(v, context) for v in value]
        if isinstance(value, dict):
            return {k: expand(v, context) for k, v in value.items()}
        return value

    for _ in range(10):
        expanded = {k: (v if k in overrides else expand(v, merged)) for k, v in merged.items()}
        if expanded == merged:
            return merged
        merged = expanded
    raise AssertionError("role defaults do not settle (a variable refers to itself?)")


def render_template(template: Path, variables: dict[str, Any]) -> str:
    env = _environment()
    return env.from_string(template.read_text()).render(variables)


def need_netns() -> None:
    """Skip unless we can make network namespaces (root, Linux, iproute2)."""
    need_root()
    need_tool("ip")
    probe = f"mc-probe-{os.getpid()}"
    made = run(["ip", "netns", "add", probe])
    if made.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {made.stderr.strip()}")
    run(["ip", "netns", "del", probe])


class Netns:
    """Named network namespaces made for one test, removed afterwards."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []

    def add(self, short: str) -> str:
        name = f"{self.prefix}-{short}"
        run(["ip", "netns", "del", name])
        proc = run(["ip", "netns", "add", name])
        assert proc.returncode == 0, proc.stderr
        self.names.append(name)
        self.sh(name, "ip link set lo up")
        return name

    def sh(self, name: str, command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside namespace `name` and require success."""
        proc = run(["ip", "netns", "exec", name, "sh", "-c", command], **kwargs)
        assert proc.returncode == 0, f"{command!r} in {name}: {proc.stderr or proc.stdout}"
        return proc

    def exec(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", name, *argv], **kwargs)

    def remove(self) -> None:
        for name in reversed(self.names):
            pids = run(["ip", "netns", "pids", name]).stdout.split()
            for pid in pids:
                run(["kill", "-KILL", pid])
            run(["ip", "netns", "del", name])
        self.names.clear()
