"""The model price table: what one model turn costs, for live budgets.

Loaded from ``settings.prices_path`` when it exists (root-owned under ``/etc``,
like the profiles file), else from the bundled ``prices.toml``. A key is a model
name or a prefix ending in ``*`` (the longest match wins).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.profiles.profiles import ProfileError, read_host_file, under_etc

BUNDLED_PRICES_PATH = Path(__file__).with_name("prices.toml")
MAX_PRICES_FILE_BYTES = 256 * 1024
_PER_TOKEN = 1_000_000

PerMillion = Annotated[float, Field(ge=0, le=10_000)]


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: PerMillion
    output: PerMillion
    cache_write: PerMillion | None = None
    cache_read: PerMillion | None = None

    def cost(
        self, *, input_tokens: int, output_tokens: int, cache_write: int, cache_read: int
    ) -> float:
        """The cost of these tokens; cache writes/reads at the input price when not listed."""
        total = (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_write * (self.cache_write if self.cache_write is not None else self.input)
            + cache_read * (self.cache_read if self.cache_read is not None else self.input)
        )
        return total / _PER_TOKEN


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[Annotated[str, Field(min_length=1, max_length=128)], Price]


@dataclass(frozen=True)
class PriceTable:
    path: Path
    prices: dict[str, Price]

    def lookup(self, model: str, *, fallback: str | None = None) -> Price | None:
        """The price of ``model``: exact name, else the longest ``prefix*`` match,
        else the ``fallback`` entry; None when there is none."""
        exact = self.prices.get(model)
        if exact is not None:
            return exact
        best: tuple[int, Price] | None = None
        for key, price in self.prices.items():
            matches = key.endswith("*") and model.startswith(key[:-1])
            if matches and (best is None or len(key) > best[0]):
                best = (len(key), price)
        if best is not None:
            return best[1]
        if fallback is not None:
            return self.prices.get(fallback)
        return None


def load_prices(path: Path | None) -> PriceTable:
    """The configured table when ``path`` exists, else the bundled one; raises
    :class:`ProfileError` with the reason when the file is refused or invalid."""
    if path is not None and (path.exists() or path.is_symlink()):
        data = read_host_file(
            path,
            what="price table",
            require_root_owned=under_etc(path),
            forbidden_mode_bits=0o022,
            max_bytes=MAX_PRICES_FILE_BYTES,
        )
        source = path
    else:
        source = BUNDLED_PRICES_PATH
        data = source.read_bytes()
    try:
        parsed = _PricesFile.model_validate(tomllib.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"price table {source} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProfileError(f"price table {source} is invalid: {where}: {first['msg']}") from None
    return PriceTable(source, dict(parsed.models))


def model_choices(path: Path | None) -> list[tuple[str, str]]:
    """The models the price table lists, for the agent form: (name, label). A
    ``prefix*`` key is offered as its prefix; the ``local`` fallback entry is not
    a model. Empty when the table is refused (the worker says why)."""
    try:
        table = load_prices(path)
    except ProfileError:
        return []
    choices: list[tuple[str, str]] = []
    for key, price in sorted(table.prices.items()):
        if key == "local":
            continue
        name = key.removesuffix("*")
        cost = (
            "costs nothing (local)"
            if price.input == price.output == 0
            else f"${price.input:g} in / ${price.output:g} out per million tokens"
        )
        family = " and its releases" if key.endswith("*") else ""
        choices.append((name, f"{name}{family}: {cost}"))
    return choices
