"""The catalog feed: ``loftmem catalog load FILE`` (JSON Lines or CSV).

Columns (CSV header or JSON keys): ``sku, name, category, style, material, colour, brand,
price, in_stock, consumable``. ``consumable`` (true/false, default false) says a customer
buys the product again and again (candles, paper napkins, gift wrap): recommendations then
offer it again to the customers who buy it, where any other product they own is never
suggested back. ``style``, ``material`` and ``colour`` (``color`` too) may hold several
values: a JSON list, or ``|``-separated in CSV. Every line is checked before anything is
written; a file with any bad line loads nothing and the report names each bad line
(line number, SKU, what is wrong), like a 422. A good file is upserted in **one** Neo4j
transaction (all or nothing) and answered with a summary: added, changed, unchanged and
discontinued products.

A full load (the default) is the whole catalog: products the file no longer lists are
marked ``discontinued`` and out of stock (never deleted: orders and customers' paths
still point at them). ``--partial`` only adds and updates.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FIELDS = ("sku", "name", "category", "style", "material", "colour", "brand", "price", "in_stock", "consumable")
COMPARED = ("name", "category", "styles", "materials", "colors", "brand", "price", "in_stock", "consumable")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


# a line as read: a JSON object, or a CSV row by its header
Record = Mapping[str, object]


class FeedProduct(TypedDict):
    """A checked line: one product as the graph's upsert takes it (a map of parameters)."""

    sku: str
    name: str
    category: str
    styles: list[str]
    materials: list[str]
    colors: list[str]
    brand: str | None
    price: float
    in_stock: bool
    consumable: bool


@dataclass
class LineError:
    """What is wrong with one line (``line`` 0: with the file as a whole)."""

    line: int
    sku: str | None
    errors: list[str]


@dataclass
class Parsed:
    products: list[FeedProduct] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


@dataclass
class Summary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    discontinued: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in vars(self).items()}


def _values(raw: object) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split("|")
    return [str(x).strip().lower() for x in items if str(x).strip()]


def _bool(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if raw is None:
        return True  # a product listed without a stock column is on sale
    text = str(raw).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def check(record: Record, line: int) -> tuple[FeedProduct | None, LineError | None]:
    """One product from one line, or what is wrong with the line."""
    errors: list[str] = []
    sku = str(record.get("sku") or "").strip()
    if not SKU.match(sku):
        errors.append("sku: required, 1-64 characters of letters, digits, '.', '_' or '-'")
    name = str(record.get("name") or "").strip()
    if not name or len(name) > 200:
        errors.append("name: required, at most 200 characters")
    category = str(record.get("category") or "").strip().lower()
    if not category or len(category) > 64:
        errors.append("category: required, at most 64 characters")
    price: float | None = None
    try:
        price = float(record.get("price"))  # type: ignore[arg-type]
        if not math.isfinite(price) or price < 0 or price > 10_000_000:
            raise ValueError
    except (TypeError, ValueError):
        errors.append(f"price: a number from 0 to 10,000,000 (got {record.get('price')!r})")
    in_stock = _bool(record.get("in_stock"))
    if in_stock is None:
        errors.append(f"in_stock: true or false (got {record.get('in_stock')!r})")
    consumable = _bool(record.get("consumable")) if record.get("consumable") is not None else False
    if consumable is None:
        errors.append(f"consumable: true or false (got {record.get('consumable')!r})")
    text = json.dumps(record, default=str)
    if "\x00" in text or "\\u0000" in text:
        errors.append("NUL characters are not allowed")
    if errors:
        return None, LineError(line, sku or None, errors)
    brand = str(record.get("brand") or "").strip() or None
    product = FeedProduct(
        sku=sku,
        name=name,
        category=category,
        styles=_values(record.get("style")),
        materials=_values(record.get("material")),
        colors=_values(record.get("colour", record.get("color"))),
        brand=brand,
        price=round(price or 0.0, 2),
        in_stock=bool(in_stock),
        consumable=bool(consumable),
    )
    return product, None


def read(path: Path) -> Parsed:
    """Every line of a JSON Lines or CSV file, checked (by extension: .csv, else JSON Lines)."""
    out = Parsed()
    seen: dict[str, int] = {}
    for line, record, problem in _records(path):
        if problem is not None:
            out.errors.append(LineError(line, None, [problem]))
            continue
        product, error = check(record, line)
        if error is not None:
            out.errors.append(error)
            continue
        assert product is not None
        if product["sku"] in seen:
            out.errors.append(LineError(line, product["sku"], [f"sku: also on line {seen[product['sku']]}"]))
            continue
        seen[product["sku"]] = line
        out.products.append(product)
    if not out.products and not out.errors:
        out.errors.append(LineError(0, None, ["the file has no products"]))
    return out


def _records(path: Path) -> Iterator[tuple[int, Record, str | None]]:
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            missing = {"sku", "name", "category", "price"} - set(reader.fieldnames or [])
            if missing:
                yield 1, {}, f"the header lacks {', '.join(sorted(missing))} (columns: {', '.join(FIELDS)})"
                return
            for row in reader:
                yield reader.line_num, row, None
            return
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield n, {}, f"not JSON: {exc.msg} (column {exc.colno})"
                continue
            if not isinstance(record, dict):
                yield n, {}, "not a JSON object"
                continue
            yield n, record, None


def diff(existing: Mapping[str, Mapping[str, object]], incoming: Sequence[FeedProduct], *, full: bool) -> Summary:
    """What a load changes: ``existing`` maps SKU to the stored product (with ``discontinued``)."""
    summary = Summary()
    for p in incoming:
        old = existing.get(p["sku"])
        if old is None:
            summary.added.append(p["sku"])
        elif old.get("discontinued") or any(_norm(old.get(k)) != _norm(p.get(k)) for k in COMPARED):
            summary.changed.append(p["sku"])
        else:
            summary.unchanged.append(p["sku"])
    if full:
        listed = {p["sku"] for p in incoming}
        summary.discontinued = sorted(
            s for s, old in existing.items() if s not in listed and not old.get("discontinued")
        )
    return summary


def _norm(value: object) -> object:
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        return round(float(value), 2)
    if value is None:
        return None
    return value
