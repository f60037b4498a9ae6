"""``missionctl scrub``: redacted text to stdout, a per-kind summary to stderr."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from app.security import scrub
from app.security.credential_gate import CredentialKind, redact
from app.security.scrub import run_scrub

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
GITHUB_1 = "ghp_" + "pX9cQ2mV7nL4kR8sT3wY6zB1dF5gH0jK2aE4"
GITHUB_2 = "ghp_" + "Lm3Nq8Rt2Vw7Xy1Za4Bc6De9Fg0Hj5Kk8Pp2"
PASSWORD = "Xk9#mQ2vL7pR"
SECRET_TEXT = (
    f"GITHUB_TOKEN={GITHUB_1}\n"
    f"backup token: {GITHUB_2}\n"
    f"DB_PASSWORD={PASSWORD}\n"
    "nothing else here\n"
)


def _run(path: str | None, stdin_text: str = "") -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_scrub(path, io.StringIO(stdin_text), stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_file_with_secrets_exits_1_and_redacts(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text(SECRET_TEXT, encoding="utf-8")
    code, out, err = _run(str(target))
    assert code == 1
    assert out == (
        "GITHUB_TOKEN=[REDACTED:github_token]\n"
        "backup token: [REDACTED:github_token]\n"
        "DB_PASSWORD=[REDACTED:password]\n"
        "nothing else here\n"
    )
    assert err.splitlines() == ["scrub: github_token: 2", "scrub: password: 1"]
    for secret in (GITHUB_1, GITHUB_2, PASSWORD):
        assert secret not in out
        assert secret not in err


def test_clean_file_exits_0_and_is_copied_verbatim(tmp_path: Path) -> None:
    text = "version 1.2.3\npassword = getpass()\n"
    target = tmp_path / "clean.txt"
    target.write_text(text, encoding="utf-8")
    code, out, err = _run(str(target))
    assert (code, out, err) == (0, text, "scrub: clean\n")


def test_stdin_when_no_path() -> None:
    code, out, err = _run(None, SECRET_TEXT)
    assert code == 1
    assert GITHUB_1 not in out
    assert "scrub: github_token: 2" in err


def test_dash_means_stdin() -> None:
    assert _run("-", "all clear\n") == (0, "all clear\n", "scrub: clean\n")


def test_binary_stdin_buffer_is_decoded() -> None:
    stdin = io.TextIOWrapper(io.BytesIO(f"pw: x\npassword={PASSWORD}\n".encode()))
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run_scrub(None, stdin, stdout, stderr) == 1
    assert stdout.getvalue() == "pw: x\npassword=[REDACTED:password]\n"


def test_missing_file_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    code, out, err = _run(str(missing))
    assert code == 2
    assert out == ""
    assert err == f"scrub: cannot read {missing}: No such file or directory\n"
    assert "Traceback" not in err


def test_directory_exits_2(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.startswith(f"scrub: cannot read {tmp_path}: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text(SECRET_TEXT, encoding="utf-8")
    target.chmod(0)
    code, out, err = _run(str(target))
    assert code == 2
    assert out == ""
    assert "Permission denied" in err


def test_permission_error_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(scrub, "open", denied, raising=False)
    code, out, err = _run(str(tmp_path / "secret.txt"))
    assert (code, out) == (2, "")
    assert err == f"scrub: cannot read {tmp_path / 'secret.txt'}: Permission denied\n"


def test_too_large_input_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub, "MAX_SCRUB_BYTES", 16)
    target = tmp_path / "big.txt"
    target.write_text("x" * 17, encoding="utf-8")
    code, out, err = _run(str(target))
    assert (code, out) == (2, "")
    assert "larger than 16 bytes" in err
    code, out, err = _run(None, "y" * 17)
    assert (code, out) == (2, "")
    assert "stdin is larger than 16 bytes" in err


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path: Path) -> None:
    target = tmp_path / "mixed.log"
    target.write_bytes(b"\xff\xfe header\npassword=" + PASSWORD.encode() + b"\n")
    code, out, err = _run(str(target))
    assert code == 1
    assert out == "\ufffd\ufffd header\npassword=[REDACTED:password]\n"
    assert "not valid UTF-8" in err
    assert PASSWORD not in err


def test_invalid_utf8_on_a_text_stdin_exits_2() -> None:
    class BadStdin(io.StringIO):
        def read(self, size: int | None = -1) -> str:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    stdout, stderr = io.StringIO(), io.StringIO()
    assert run_scrub(None, BadStdin(), stdout, stderr) == 2
    assert stderr.getvalue() == "scrub: stdin is not valid UTF-8 text\n"


def test_broken_stdout_exits_2() -> None:
    class BrokenPipe(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    stderr = io.StringIO()
    assert run_scrub(None, io.StringIO("hello"), BrokenPipe(), stderr) == 2
    assert stderr.getvalue() == "scrub: cannot write output: Broken pipe\n"


def test_summary_never_contains_a_corpus_secret(tmp_path: Path) -> None:
    corpus = "\n".join(
        (CORPORA / "credentials" / f"{kind.value}.txt").read_text(encoding="utf-8")
        for kind in CredentialKind
    )
    text = corpus.replace("«", "").replace("»", "")
    target = tmp_path / "all.txt"
    target.write_text(text, encoding="utf-8")
    code, out, err = _run(str(target))
    assert code == 1
    assert out == redact(text).text
    assert {line.split(":")[1].strip() for line in err.splitlines()} == {
        kind.value for kind in CredentialKind
    }
    for line in err.splitlines():
        assert line.startswith("scrub: ")
        assert len(line) < 40
