"""Every regular expression the application uses, and adversarial inputs for each.

Not a test module: ``test_hostile_redos.py`` imports it to collect the expressions
and runs it as a child process (``python -m tests.hostile.redos_probe SHARD/COUNT``)
to time them, so a catastrophic expression (the ``re`` engine cannot be
interrupted) is killed from outside instead of hanging the test run.

Where the expressions come from:

* ``re.Pattern`` objects reachable from every module under ``app/``: module
  globals, containers of them, class attributes and instances of the app's own
  classes (e.g. the credential gate's rule tables);
* literal patterns passed inline to ``re.compile/match/search/sub/...`` calls
  (found in the source with ``ast``);
* ``pattern`` constraints of pydantic models and of the OpenAPI document
  (pydantic checks these with a linear-time engine; timing them with Python's
  backtracking ``re`` is the stricter test).

The child prints one line per expression: ``OK <index> <worst seconds> <how>`` or
``SLOW <index> <seconds> <how>``, after a ``BEGIN <index>`` line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import re._constants as sre_constants
import re._parser as sre_parser
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import app

SIZE = 100 * 1024
PER_INPUT_LIMIT_S = 1.0
MAX_ALPHABET = 24
MAX_WORDS = 8
INLINE_FUNCTIONS = frozenset(
    {"compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall", "finditer"}
)


@dataclass(frozen=True)
class Expression:
    source: str
    flags: int
    origin: str

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.source, self.flags)


# --------------------------------------------------------------------------- collection


def app_modules() -> list[Any]:
    """Every module under ``app/``, found on disk (``app/ui`` is a namespace
    package, which ``pkgutil`` would not walk)."""
    root = Path(app.__file__).resolve().parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return [importlib.import_module(name) for name in names]


def _is_app_object(value: Any) -> bool:
    module = getattr(type(value), "__module__", "") or ""
    return module == "app" or module.startswith("app.")


def _walk(value: Any, origin: str, found: dict[tuple[str, int], str], depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            found.setdefault((value.pattern, value.flags & ~re.UNICODE), origin)
        return
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return
    if isinstance(value, dict):
        for key, item in list(value.items())[:5000]:
            _walk(item, f"{origin}[{key!r}]", found, depth + 1)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(list(value)[:5000]):
            _walk(item, f"{origin}[{index}]", found, depth + 1)
        return
    if inspect.isclass(value) and (value.__module__ or "").startswith("app"):
        for name, item in list(vars(value).items()):
            if not name.startswith("__"):
                _walk(item, f"{origin}.{name}", found, depth + 1)
        return
    if _is_app_object(value) and not callable(value):
        attributes: dict[str, Any] = {}
        if hasattr(value, "__dict__"):
            attributes.update(vars(value))
        for slot in getattr(type(value), "__slots__", ()):
            if hasattr(value, slot):
                attributes[slot] = getattr(value, slot)
        for name, item in attributes.items():
            _walk(item, f"{origin}.{name}", found, depth + 1)


def _inline_patterns(module: Any, found: dict[tuple[str, int], str]) -> None:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in INLINE_FUNCTIONS
            and isinstance(func.value, ast.Name)
            and func.value.id == "re"
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            where = f"{module.__name__}:{node.lineno} (inline re.{func.attr})"
            found.setdefault((node.args[0].value, 0), where)


def _schema_patterns(schema: Any, origin: str, found: dict[tuple[str, int], str]) -> None:
    if isinstance(schema, dict):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            found.setdefault((pattern, 0), origin)
        for item in schema.values():
            _schema_patterns(item, origin, found)
    elif isinstance(schema, list):
        for item in schema:
            _schema_patterns(item, origin, found)


def _model_patterns(modules: list[Any], found: dict[tuple[str, int], str]) -> None:
    from pydantic import BaseModel

    for module in modules:
        for name, value in list(vars(module).items()):
            if (
                inspect.isclass(value)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                try:
                    schema = value.model_json_schema()
                except Exception:  # generic models without parameters
                    continue
                _schema_patterns(schema, f"{module.__name__}.{name} (pydantic)", found)


def _openapi_patterns(found: dict[tuple[str, int], str]) -> None:
    from app.core.settings import Settings
    from app.main import create_app

    nowhere = Path("/nonexistent/mission-control")
    document = create_app(Settings(database_path=nowhere / "db", state_dir=nowhere)).openapi()
    _schema_patterns(document, "the OpenAPI document", found)


def collect() -> list[Expression]:
    """Every expression, in a stable order."""
    extra = os.environ.get("REDOS_EXTRA_PATTERN")
    if extra:  # the harness' own self-test plants a catastrophic expression
        return [Expression(extra, 0, "REDOS_EXTRA_PATTERN")]
    found: dict[tuple[str, int], str] = {}
    modules = app_modules()
    for module in modules:
        for name, value in list(vars(module).items()):
            if name.startswith("__"):
                continue
            if inspect.ismodule(value):
                continue
            if inspect.isclass(value) and value.__module__ != module.__name__:
                continue
            _walk(value, f"{module.__name__}.{name}", found)
        _inline_patterns(module, found)
    _model_patterns(modules, found)
    _openapi_patterns(found)
    return [Expression(source, flags, origin) for (source, flags), origin in sorted(found.items())]


# --------------------------------------------------------------------------- inputs


_CATEGORY_CHARS = {
    sre_constants.CATEGORY_DIGIT: "09",
    sre_constants.CATEGORY_NOT_DIGIT: "a-",
    sre_constants.CATEGORY_SPACE: " \n\t",
    sre_constants.CATEGORY_NOT_SPACE: "a0",
    sre_constants.CATEGORY_WORD: "aZ0_",
    sre_constants.CATEGORY_NOT_WORD: " -",
    sre_constants.CATEGORY_LINEBREAK: "\n",
    sre_constants.CATEGORY_NOT_LINEBREAK: "a",
}


def _alphabet_and_words(expression: Expression) -> tuple[list[str], list[str]]:
    chars: list[str] = []
    words: list[str] = []

    def add(char: str) -> None:
        if char not in chars:
            chars.append(char)

    def visit(items: Any) -> None:
        run = ""
        for op, arg in items:
            if op is sre_constants.LITERAL:
                add(chr(arg))
                run += chr(arg)
                continue
            if len(run) >= 2:
                words.append(run)
            run = ""
            if op is sre_constants.NOT_LITERAL:
                add("a" if arg != ord("a") else "b")
            elif op is sre_constants.ANY:
                add("a")
            elif op is sre_constants.IN:
                for kind, value in arg:
                    if kind is sre_constants.LITERAL:
                        add(chr(value))
                    elif kind is sre_constants.RANGE:
                        low, high = value
                        for code in (low, high, (low + high) // 2):
                            add(chr(code))
                    elif kind is sre_constants.CATEGORY:
                        for char in _CATEGORY_CHARS.get(value, ""):
                            add(char)
            elif op in (
                sre_constants.MAX_REPEAT,
                sre_constants.MIN_REPEAT,
                sre_constants.POSSESSIVE_REPEAT,
            ):
                visit(arg[2])
            elif op is sre_constants.SUBPATTERN:
                visit(arg[-1])
            elif op is sre_constants.ATOMIC_GROUP:
                visit(arg)
            elif op is sre_constants.BRANCH:
                for branch in arg[1]:
                    visit(branch)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                visit(arg[1])
            elif op is sre_constants.GROUPREF_EXISTS:
                visit(arg[1])
                if arg[2] is not None:
                    visit(arg[2])
        if len(run) >= 2:
            words.append(run)

    visit(sre_parser.parse(expression.source, expression.flags))
    if len(chars) > MAX_ALPHABET:
        step = len(chars) / MAX_ALPHABET
        chars = [chars[int(i * step)] for i in range(MAX_ALPHABET)]
    words = sorted(set(words), key=len, reverse=True)[:MAX_WORDS]
    return chars or ["a"], words


def _fill(unit: str, size: int = SIZE) -> str:
    return (unit * (size // max(1, len(unit)) + 1))[:size]


def adversarial_inputs(expression: Expression) -> Iterator[tuple[str, str]]:
    """(description, text) pairs of about ``SIZE`` characters each."""
    chars, words = _alphabet_and_words(expression)
    for char in chars:
        yield f"{char!r} repeated, then '!'", _fill(char, SIZE - 1) + "!"
    yield "the alphabet repeated", _fill("".join(chars))
    yield "the alphabet repeated, then NUL", _fill("".join(chars), SIZE - 1) + "\x00"
    for word in words:
        yield f"{word!r} repeated", _fill(word)
        for char in chars[:6]:
            yield f"{word!r} then {char!r} repeated", word + _fill(char, SIZE - len(word) - 1) + "!"
    yield "a line of mixed text", _fill("key: value = 'x' ;\n")


def _timed(operation: Callable[[str], object], text: str) -> float:
    started = time.perf_counter()
    operation(text)
    return time.perf_counter() - started


def time_expression(expression: Expression) -> tuple[float, str]:
    """The worst time of search/fullmatch/finditer over the adversarial inputs."""
    pattern = expression.compiled()
    worst, how = 0.0, ""
    operations: list[tuple[str, Callable[[str], object]]] = [
        ("search", pattern.search),
        ("fullmatch", pattern.fullmatch),
        ("finditer", lambda text: sum(1 for _ in pattern.finditer(text))),
    ]
    for description, text in adversarial_inputs(expression):
        for name, operation in operations:
            took = _timed(operation, text)
            if took > PER_INPUT_LIMIT_S:  # once more: a load spike on a shared machine
                took = min(took, _timed(operation, text))
            if took > worst:
                worst, how = took, f"{name} on {description}"
            if took > PER_INPUT_LIMIT_S:
                return took, f"{name} on {description}"
    return worst, how


def main(argv: list[str]) -> int:
    shard, count = (int(part) for part in argv[0].split("/")) if argv else (0, 1)
    expressions = collect()
    for index, expression in enumerate(expressions):
        if index % count != shard:
            continue
        print(f"BEGIN {index}", flush=True)
        took, how = time_expression(expression)
        verdict = "SLOW" if took > PER_INPUT_LIMIT_S else "OK"
        print(f"{verdict} {index} {took:.4f} {how!r}", flush=True)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
