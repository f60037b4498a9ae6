"""The notifier's unit and its provisioning (docs/notifications.md): the only
unit that sends alerts off the Pi, readable channels file for it alone, egress
to nothing but the drop-in's addresses, the URLs never in a unit's environment
nor in Ansible's output, the file checked before the notifier restarts."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import yaml

from app.notifications.channels import load_channels
from tests.provisioning.test_provisioning_systemd import parse_unit
from tests.support.provisioning import SYSTEMD

ROLE = Path(__file__).resolve().parents[2] / "provisioning" / "roles" / "app"
NOTIFY = parse_unit(SYSTEMD / "mission-control-notify.service")


def test_the_notifier_unit_is_notify_with_a_watchdog_as_the_notify_group() -> None:
    assert NOTIFY["Service.Type"] == ["notify"] and NOTIFY["Service.WatchdogSec"] == ["30"]
    assert NOTIFY["Service.ExecStart"] == [
        "/opt/mission-control/current/venv/bin/missionctl notify run"
    ]
    assert NOTIFY["Service.User"] == ["mission-control"]
    # the only unit whose group may read the channels file
    assert NOTIFY["Service.Group"] == ["mission-control-notify"]
    for unit in SYSTEMD.glob("*.service"):
        if unit.name != "mission-control-notify.service":
            values = parse_unit(unit)
            groups = values.get("Service.Group", []) + values.get("Service.SupplementaryGroups", [])
            assert not any("notify" in g for g in groups), unit.name


def test_the_notifier_reaches_nothing_but_what_the_drop_in_allows() -> None:
    assert NOTIFY["Service.IPAddressDeny"] == ["any"]
    assert "Service.IPAddressAllow" not in NOTIFY  # only notify-egress.conf adds addresses
    assert NOTIFY["Service.SocketBindDeny"] == ["any"]
    assert NOTIFY["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "Service.PrivateNetwork" not in NOTIFY


def test_the_notifier_sees_the_database_not_the_keys_nor_the_api_socket() -> None:
    assert "Service.StateDirectory" not in NOTIFY  # it would regroup the state to the unit
    assert NOTIFY["Service.ReadWritePaths"] == ["/var/lib/mission-control"]
    assert NOTIFY["Service.InaccessiblePaths"] == [
        "-/var/lib/mission-control/secrets",
        "-/run/mission-control",
    ]
    for key in ("NoNewPrivileges", "PrivateUsers", "MemoryDenyWriteExecute", "ProtectHome"):
        assert NOTIFY[f"Service.{key}"] == ["yes"], key
    assert NOTIFY["Service.CapabilityBoundingSet"] == [""]
    assert NOTIFY["Service.ProtectSystem"] == ["strict"]


def _tasks(name: str) -> list[dict[str, object]]:
    loaded: list[dict[str, object]] = yaml.safe_load((ROLE / "tasks" / name).read_text())
    return loaded


def test_the_channels_file_is_root_owned_for_the_notifier_checked_and_never_logged() -> None:
    (task,) = [t for t in _tasks("notify.yml") if "notify.toml" in str(t.get("name"))]
    template = task["ansible.builtin.template"]
    assert isinstance(template, dict)
    assert template["owner"] == "root" and template["mode"] == "0640"
    assert template["group"] == "{{ app_notify_group }}"
    assert template["validate"].endswith("missionctl notify check --file %s")
    assert task["no_log"] is True
    assert task["notify"] == "Check and restart the notifier"
    handlers = yaml.safe_load((ROLE / "handlers" / "main.yml").read_text())
    listening = [h["name"] for h in handlers if h.get("listen") == "Check and restart the notifier"]
    assert listening == ["Check the notifier's channels", "Restart the notifier after the check"]
    check = next(h for h in handlers if h["name"] == "Check the notifier's channels")
    assert check["ansible.builtin.command"]["cmd"].endswith("missionctl notify check")


def test_no_channel_url_in_a_unit_environment() -> None:
    env = (ROLE / "templates" / "env.j2").read_text()
    assert "app_notify_channels" not in env and "WEBHOOK" not in env
    assert "MC_NOTIFY_CHANNELS_PATH='{{ app_notify_dir }}/notify.toml'" in env
    for drop_in in (ROLE / "templates").glob("*.conf.j2"):
        assert "app_notify_channels" not in drop_in.read_text(), drop_in.name


def test_the_template_renders_a_file_the_notifier_accepts(tmp_path: Path) -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    env.globals["ansible_managed"] = "managed"
    text = env.from_string((ROLE / "templates" / "notify.toml.j2").read_text()).render(
        app_notify_group="mission-control-notify",
        app_notify_channels=[
            {"name": "phone", "url": 'ntfys://topic-with-"quote'},
            {"name": "hook", "url": "json://10.0.0.5:8099/x", "allow_plaintext": True},
            {"name": "zulip", "url": "ntfys://t", "hosts": ["ntfy.example.net"]},
        ],
    )
    path = tmp_path / "notify.toml"
    path.write_text(text)
    path.chmod(0o640)
    channels = load_channels(path)
    assert [(c.name, c.hosts) for c in channels] == [
        ("phone", ("ntfy.sh",)),
        ("hook", ("10.0.0.5",)),
        ("zulip", ("ntfy.example.net",)),
    ]
    assert channels[0].url == 'ntfys://topic-with-"quote'


def test_role_defaults_keep_alerts_on_the_pi() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["app_notify_channels"] == []
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert options["app_notify_channels"]["default"] == []
    assert "app_notify_webhook_url" not in options
