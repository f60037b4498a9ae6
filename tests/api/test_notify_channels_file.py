"""The notifier's channels file: refused when others could change or read it,
when a URL would send in the clear off loopback, or is not a service; never
quoted in an error. ``missionctl notify check`` says what is wrong and lists
names only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.notifications.channels import ChannelsError, load_channels
from tests.support.cli import missionctl

SECRET = "tk-0ZyX9wVu8tSr7qPo"
GOOD = f'[[channel]]\nname = "phone"\nurl = "ntfys://alerts-{SECRET}"\n'


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_good_file_gives_names_services_and_hosts(tmp_path: Path) -> None:
    (channel,) = load_channels(write(tmp_path, GOOD, 0o640))
    assert (channel.name, channel.service, channel.hosts) == ("phone", "ntfy", ("ntfy.sh",))
    assert channel.encrypted and SECRET not in repr(channel)


def test_no_file_is_no_channel(tmp_path: Path) -> None:
    assert load_channels(tmp_path / "absent.toml") == []


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o604, 0o666])
def test_a_file_others_may_change_or_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, GOOD, mode)
    with pytest.raises(ChannelsError, match=f"mode {mode:04o}.*chmod 0640") as refused:
        load_channels(path)
    assert SECRET not in str(refused.value)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, GOOD)
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    with pytest.raises(ChannelsError, match="cannot be opened"):
        load_channels(link)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[channel]]\nname = "hook"\nurl = "json://203.0.113.5/x"\n', "sends in the clear"),
        ('[[channel]]\nname = "hook"\nurl = "ntfy://ntfy.example.net/t"\n', "sends in the clear"),
        ('[[channel]]\nname = "Phone!"\nurl = "ntfys://t"\n', "name must be"),
        ('[[channel]]\nname = "x"\nurl = "nosuchservice://a/b"\n', "not a valid apprise URL"),
        ('[[channel]]\nname = "x"\n', "url is missing"),
        ('[[channel]]\nname = "x"\nurl = "ntfys://t"\nextra = 1\n', "unknown keys"),
        ('[[channel]]\nname = "x"\nurl = "ntfys://t"\n' * 2, "unique"),
        ('url = "ntfys://t"\n', "unknown keys"),
        ('[[channel]\nname = "x"', "not valid TOML"),
    ],
)
def test_bad_entries_are_refused_with_the_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ChannelsError, match=message) as refused:
        load_channels(write(tmp_path, text))
    assert "203.0.113.5/x" not in str(refused.value)


def test_plain_text_only_when_the_channel_says_so(tmp_path: Path) -> None:
    text = '[[channel]]\nname = "hook"\nurl = "json://203.0.113.5/x"\nallow_plaintext = true\n'
    (channel,) = load_channels(write(tmp_path, text))
    assert channel.hosts == ("203.0.113.5",) and not channel.encrypted
    loopback = '[[channel]]\nname = "hook"\nurl = "json://127.0.0.1:9/x"\n'
    assert load_channels(write(tmp_path, loopback))[0].hosts == ("127.0.0.1",)


def test_notify_check_and_hosts_name_channels_never_urls(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD
        + '[[channel]]\nname = "tg"\nurl = "tgram://123456789:AAbbccddeeffgghhiijjkkllmmnnooppqqrr/987"\n',
    )
    checked = missionctl(tmp_path, "notify", "check", "--file", str(path))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [
        "phone: ntfy via ntfy.sh",
        "tg: Telegram via api.telegram.org",
    ]
    hosts = missionctl(tmp_path, "notify", "hosts", "--file", str(path))
    assert hosts.stdout.splitlines() == ["api.telegram.org", "ntfy.sh"]
    for out in (checked, hosts):
        assert SECRET not in out.stdout + out.stderr and "AAbbcc" not in out.stdout + out.stderr
    os.chmod(path, 0o666)
    refused = missionctl(tmp_path, "notify", "check", "--file", str(path))
    assert refused.returncode == 1 and "chmod 0640" in refused.stderr
    assert SECRET not in refused.stdout + refused.stderr
    empty = missionctl(tmp_path, "notify", "check", "--file", str(tmp_path / "none.toml"))
    assert empty.returncode == 0 and empty.stdout.strip() == "no channel: alerts stay on the Pi"
