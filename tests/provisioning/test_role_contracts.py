"""The roles' contracts (docs/provisioning.md, "What the roles share"): each
role is self-contained (it never climbs out of its directory; what it takes
from the appliance's checkout comes through a role-prefixed variable, from
the one place provisioning/vars/mission_control.yml), the "is systemd
running" expression is written once, and each role's meta/argument_specs.yml
states every default of its defaults/main.yml and the choices of every
enumeration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from tests.support.provisioning import PROVISIONING, REPO, ROLES, load_yaml

SHARED = PROVISIONING / "vars" / "mission_control.yml"
PLAYBOOKS = ["site.yml", "update.yml"]
ROLE_NAMES = sorted(path.name for path in ROLES.iterdir() if path.is_dir())

#: the role variables that name where a role takes files from in the checkout,
#: and what each is relative to the checkout
SOURCE_VARIABLES = {
    "app": {"app_source_dir": "", "app_units_dir": "/systemd"},
    "wireguard": {"wireguard_source_dir": ""},
    "nginx": {"nginx_source_dir": ""},
    "monitoring": {"monitoring_source_dir": ""},
    "backup": {"backup_source_dir": ""},
}
#: each role's copy of mission_control_systemd_live
LIVE_VARIABLES = {
    "base": "base_systemd_live",
    "firewall": "firewall_apply_live",
    "wireguard": "wireguard_systemd_live",
    "nginx": "nginx_systemd_live",
    "app": "app_systemd_live",
    "monitoring": "monitoring_systemd_live",
    "backup": "backup_systemd_live",
}
#: options whose value is one of a fixed set: each declares it with choices:
ENUMERATIONS = {
    "agent_cli": ["agent_cli_claude_code"],
    "app": ["app_log_level"],
    "base": [
        "base_apt_upgrade",
        "base_ssh_log_level",
        "base_journald_storage",
        "base_debsums_check",
    ],
    "local_model": ["local_model_engine", "local_model_ollama_archive_suffix"],
    "nginx": ["nginx_http2_style"],
}

# the systemd-live expression: a test of ansible_connection against chroot
LIVE_EXPRESSION = re.compile(r"ansible_connection[^\n]*\bnot\s+in\b[^\n]*chroot")
# a ".." path segment
PARENT_SEGMENT = re.compile(r"(^|[\s\"'/}])\.\.($|[/\s\"'])", re.MULTILINE)
CLIMBING_ROLE_PATH = re.compile(r"role_path[^\n]*\.\.")


def role_text_files(role: str) -> list[Path]:
    """The role's YAML and templates (files/ holds data, not paths)."""
    return [
        path
        for path in sorted((ROLES / role).rglob("*"))
        if path.is_file() and path.suffix in {".yml", ".yaml", ".j2"}
    ]


def spec_options(role: str) -> dict[str, Any]:
    spec = load_yaml(ROLES / role / "meta" / "argument_specs.yml")
    options: dict[str, Any] = spec["argument_specs"]["main"]["options"]
    return options


def role_defaults(role: str) -> dict[str, Any]:
    defaults: dict[str, Any] = load_yaml(ROLES / role / "defaults" / "main.yml")
    return defaults


def walk_tasks(tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for task in tasks or []:
        yield task
        for part in ("block", "rescue", "always"):
            if part in task:
                yield from walk_tasks(task[part])


def file_tasks(role: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, task, module args) of each copy and template from the controller."""
    for name in ("tasks", "handlers"):
        for path in sorted((ROLES / role / name).glob("*.yml")):
            for task in walk_tasks(load_yaml(path)):
                for module in ("ansible.builtin.copy", "ansible.builtin.template"):
                    args = task.get(module)
                    if isinstance(args, dict) and "src" in args and not args.get("remote_src"):
                        yield path.name, task, args


def test_site_runs_every_role() -> None:
    plays = load_yaml(PROVISIONING / "site.yml")
    assert sorted(entry["role"] for entry in plays[0]["roles"]) == ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_no_role_climbs_out_of_its_directory(role: str) -> None:
    """No ``{{ role_path }}/../..``, and no ``..`` path segment at all: a role
    takes what it does not carry from a variable of its own."""
    for path in role_text_files(role):
        text = path.read_text()
        where = path.relative_to(REPO)
        assert not CLIMBING_ROLE_PATH.search(text), f"{where}: role_path with .."
        match = PARENT_SEGMENT.search(text)
        assert not match, f"{where}: a '..' path segment: {match.group(0)!r}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_files_from_outside_the_role_come_through_its_own_variables(role: str) -> None:
    """Each copy and template reads a file of the role (a relative name) or a
    path made from one of the role's own variables, never an absolute path,
    role_path or playbook_dir."""
    for name, task, args in file_tasks(role):
        src = str(args["src"])
        label = f"{role}/{name}: {task.get('name')}: src {src!r}"
        assert "role_path" not in src and "playbook_dir" not in src, label
        assert not src.startswith("/"), label
        if src.startswith("{{"):
            first = re.match(r"\{\{\s*([a-z0-9_]+)", src)
            assert first, label
            assert first.group(1) == "item" or first.group(1).startswith(f"{role}_"), label


@pytest.mark.parametrize("role", sorted(SOURCE_VARIABLES))
def test_the_files_a_role_takes_from_the_checkout_exist(role: str) -> None:
    """With the checkout's default (this repository), every file the role
    copies from it is there: top-level systemd/, nginx/, wireguard/ and
    scripts/ stay where the roles expect them."""
    variables = {name: f"{REPO}{tail}" for name, tail in SOURCE_VARIABLES[role].items()}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    checked = 0
    for name, task, args in file_tasks(role):
        src = str(args["src"])
        if not any(v in src for v in variables):
            continue
        loop = task.get("loop", [None])
        if not isinstance(loop, list):
            # a computed loop (its items are not known here): the directory
            loop, src = [None], src.split("{{ item")[0]
        for item in loop:
            path = Path(env.from_string(src).render(item=item, **variables))
            assert path.exists(), f"{role}/{name}: {task.get('name')}: {path} is missing"
            checked += 1
    assert checked, f"{role} takes nothing from the checkout: drop its source variable"


def test_the_checkout_is_named_in_one_place() -> None:
    """mission_control_source_dir is defined once, in vars/mission_control.yml
    (the checkout this playbook is part of, no ".."), which both playbooks
    load; each role's source variable defaults to it."""
    shared = load_yaml(SHARED)
    assert shared["mission_control_source_dir"] == "{{ playbook_dir | dirname }}"
    for playbook in PLAYBOOKS:
        for play in load_yaml(PROVISIONING / playbook):
            assert play.get("vars_files") == ["vars/mission_control.yml"], playbook
    definitions = [
        path.relative_to(REPO)
        for path in sorted(PROVISIONING.rglob("*.yml"))
        if re.search(r"^\s*mission_control_source_dir:", path.read_text(), re.MULTILINE)
    ]
    assert definitions == [SHARED.relative_to(REPO)]
    for role, names in SOURCE_VARIABLES.items():
        defaults = role_defaults(role)
        for name, tail in names.items():
            assert defaults[name] == "{{ mission_control_source_dir }}" + tail, name


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_roles_read_the_shared_settings_only_through_their_own_variables(role: str) -> None:
    """Tasks, handlers and templates use <role>_source_dir and
    <role>_systemd_live, never the shared names: a role can be pointed
    elsewhere through its own variables alone."""
    for path in role_text_files(role):
        if path.parts[-2] in {"defaults", "meta"}:
            continue
        text = path.read_text()
        assert "mission_control_source_dir" not in text, path.relative_to(REPO)
        assert "mission_control_systemd_live" not in text, path.relative_to(REPO)


def test_the_systemd_live_expression_is_written_once() -> None:
    """The test of ansible_connection against chroot is in
    vars/mission_control.yml only; each role's <role>_systemd_live (the
    firewall's firewall_apply_live) defaults to mission_control_systemd_live."""
    texts = {
        path.relative_to(REPO): path.read_text(errors="replace")
        for path in sorted(PROVISIONING.rglob("*"))
        if path.is_file() and "artifacts" not in path.parts
    }
    found = [
        (where, len(LIVE_EXPRESSION.findall(text)))
        for where, text in texts.items()
        if LIVE_EXPRESSION.search(text)
    ]
    assert found == [(SHARED.relative_to(REPO), 1)]
    for role in ROLE_NAMES:
        defaults = role_defaults(role)
        live = [n for n in defaults if n.endswith("_systemd_live") or n.endswith("_apply_live")]
        assert live == ([LIVE_VARIABLES[role]] if role in LIVE_VARIABLES else []), role
        for name in live:
            assert defaults[name] == "{{ mission_control_systemd_live }}", name


@pytest.mark.parametrize(
    ("connection", "live"),
    [
        ("ssh", True),
        (None, True),  # no ansible_connection: Ansible's default, ssh
        ("community.docker.nsenter", True),  # the e2e harness's first run: systemd runs
        ("local", True),
        ("chroot", False),
        ("community.general.chroot", False),  # scripts/provision-chroot-test.sh
    ],
)
def test_the_systemd_live_expression(connection: str | None, live: bool) -> None:
    expression = load_yaml(SHARED)["mission_control_systemd_live"]
    context = {} if connection is None else {"ansible_connection": connection}
    assert jinja2.Environment().from_string(expression).render(context) == str(live)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_state_every_default(role: str) -> None:
    """defaults/main.yml and meta/argument_specs.yml name the same options,
    each spec's default: is the value of defaults/main.yml (a computed one as
    written there), and a choices: list holds it."""
    defaults = role_defaults(role)
    spec = spec_options(role)
    assert set(defaults) == set(spec), (
        f"{role}: not in argument_specs {sorted(set(defaults) - set(spec))}, "
        f"not in defaults {sorted(set(spec) - set(defaults))}"
    )
    for name, value in defaults.items():
        option = spec[name]
        assert "default" in option, f"{name}: no default: in argument_specs"
        assert option["default"] == value, f"{name}: {option['default']!r} != {value!r}"
        if "choices" in option:
            assert value in option["choices"], f"{name}: {value!r} not in {option['choices']}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_enumerations_declare_their_choices(role: str) -> None:
    spec = spec_options(role)
    for name in ENUMERATIONS.get(role, []):
        choices = spec[name].get("choices")
        assert choices and len(choices) > 1, f"{name}: an enumeration without choices"
        assert spec[name]["type"] == "str", name
    # and the other way round: an option with choices is listed above
    with_choices = sorted(n for n, o in spec.items() if "choices" in o)
    assert with_choices == sorted(ENUMERATIONS.get(role, [])), role
