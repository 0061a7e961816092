"""The demo shop: a deterministic population of customers with orders and chat, so that
recommendations and the analyst queries show something meaningful on first start.

Believable co-purchase patterns come from how people furnish a room: each customer has a
style (their taste) and furnishes one to three rooms, one order per step (the anchor piece
first, then what goes with it). For every (style, category) the shop has a short
"collection" of favourites, so customers of the same taste converge on the same pieces:
those who bought the top modern sofa tend to buy the top modern coffee table next. A
share of customers also chat (their style, a material they dislike, a budget, and some a
change of mind), and some asked about categories this month.

Everything goes through the real write paths: orders through :func:`service.postgres.orders.record`
(the order feed's code), messages through :func:`service.postgres.history.add_messages` (the import
path), then the worker files both in the graph. ``seed`` fixes everything but the clock:
dates are relative to ``now``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from service.postgres import history, orders

if TYPE_CHECKING:
    from service.catalog import Catalog, Product
    from service.runtime import Runtime

PREFIX = "demo-"
# rooms as orders in sequence: the anchor piece, then what goes with it
ROOMS: dict[str, list[list[str]]] = {
    "living room": [["sofa", "sectional"], ["coffee table"], ["rug", "floor lamp"], ["side table", "armchair"]],
    "dining room": [["dining table"], ["dining chair"], ["pendant light", "console table"]],
    "bedroom": [["bed"], ["nightstand"], ["dresser", "table lamp"], ["mirror"]],
    "home office": [["desk"], ["office chair"], ["bookshelf", "table lamp"]],
    "patio": [["outdoor sofa"], ["outdoor dining set"]],
}
FIRST_NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Ella",
    "Finn",
    "Grace",
    "Hugo",
    "Iris",
    "Jonah",
    "Kira",
    "Leo",
    "Maya",
    "Nico",
    "Olive",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Vik",
    "Wren",
    "Xavi",
    "Yara",
    "Zane",
    "Amir",
    "Bea",
    "Cal",
    "Dana",
    "Eli",
    "Faye",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kai",
    "Lena",
    "Milo",
    "Nora",
)
ACCESSORIES = ("rug", "table lamp", "mirror")
ACCESSORY_SHARE = 0.15
MATERIAL_DISLIKES = ("glass", "velvet", "metal", "rattan", "leather", "marble")


@dataclass
class DemoCustomer:
    user: str
    name: str
    style: str
    rooms: list[str]
    orders: list[orders.Order] = field(default_factory=list)
    messages: list[history.NewMessage] = field(default_factory=list)


def _collection(catalog: Catalog, style: str, category: str, rng: random.Random) -> list[Product]:
    """The favourites of a taste in a category: products of that style first (a fixed,
    seed-dependent order), then the rest, so every category has something to sell."""
    pool = [p for p in catalog.products if p.category == category]
    styled = [p for p in pool if style in p.styles]
    rest = [p for p in pool if style not in p.styles]
    rng.shuffle(styled)
    rng.shuffle(rest)
    return (styled + rest)[:5]


def _pick(items: list[Product], rng: random.Random) -> Product:
    """Zipf-like: the first favourite most often."""
    weights = [1.0 / (i + 1) ** 1.5 for i in range(len(items))]
    return rng.choices(items, weights=weights, k=1)[0]


def population(
    catalog: Catalog, *, customers: int = 300, seed: int = 7, now: datetime | None = None
) -> list[DemoCustomer]:
    """The demo customers, their orders and what they said (nothing written)."""
    # dates are relative to today (midnight UTC): two loads on one day write the same shop
    now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    styles = [s for s in catalog.styles if any(s in p.styles for p in catalog.products)]
    collections: dict[tuple[str, str], list[Product]] = {}
    for style in styles:
        for steps in ROOMS.values():
            for step in steps:
                for category in step:
                    collections[(style, category)] = _collection(catalog, style, category, rng)
        for category in ACCESSORIES:
            collections.setdefault((style, category), _collection(catalog, style, category, rng))
    # tastes are not equally common: a few styles dominate, as in a real shop
    style_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(styles))]
    out: list[DemoCustomer] = []
    for n in range(customers):
        style = rng.choices(styles, weights=style_weights, k=1)[0]
        rooms = rng.sample(list(ROOMS), k=rng.choice((1, 1, 2, 2, 3)))
        name = FIRST_NAMES[n % len(FIRST_NAMES)]
        c = DemoCustomer(f"{PREFIX}{n + 1:04d}", name, style, rooms)
        at = now - timedelta(days=rng.randint(120, 720))
        number = 0
        for room in rooms:
            for step in ROOMS[room][: rng.randint(2, len(ROOMS[room]))]:
                category = rng.choice(step)
                items = collections.get((style, category)) or []
                if not items:
                    continue
                product = _pick(items, rng)
                qty = 4 if category == "dining chair" else 1
                at += timedelta(days=rng.randint(3, 60))
                if at > now - timedelta(days=1):  # not bought yet
                    break
                number += 1
                lines = [orders.Line(product.sku, qty, product.price)]
                if rng.random() < ACCESSORY_SHARE:  # a small piece added to the basket
                    extra = _pick(collections.get((style, rng.choice(ACCESSORIES))) or items, rng)
                    if extra.sku != product.sku:
                        lines.append(orders.Line(extra.sku, 1, extra.price))
                c.orders.append(orders.Order(f"{c.user}-{number:02d}", at.replace(microsecond=0), tuple(lines)))
        c.messages = _conversation(c, rng, now)
        out.append(c)
    return out


def _conversation(c: DemoCustomer, rng: random.Random, now: datetime) -> list[history.NewMessage]:
    """What some customers said: their taste, a dislike, a budget, a change of mind, and
    what they asked about this month."""
    said: list[tuple[datetime, str]] = []
    first = (c.orders[0].placed_at if c.orders else now) - timedelta(days=2)
    if rng.random() < 0.7:
        said.append((first, f"Hi, my name is {c.name} and I love {c.style} furniture."))
    if rng.random() < 0.3:
        said.append((first + timedelta(minutes=1), f"I really don't like {rng.choice(MATERIAL_DISLIKES)}."))
    if rng.random() < 0.25:
        said.append((first + timedelta(minutes=2), f"My budget is around ${rng.choice((1500, 2500, 3000, 5000)):,}."))
    if rng.random() < 0.15:  # a change of mind, months apart
        said.append((first + timedelta(minutes=3), "I prefer oak for the dining table."))
        said.append((now - timedelta(days=rng.randint(3, 20)), "Actually I prefer walnut now."))
    if rng.random() < 0.35:  # interest this month (ASKED_ABOUT)
        room = rng.choice(list(ROOMS))
        category = rng.choice(rng.choice(ROOMS[room]))
        said.append((now - timedelta(days=rng.randint(0, min(now.day - 1, 20))), f"Do you have any {category}s?"))
    said.sort(key=lambda t: t[0])
    return [history.NewMessage("user", text, at, None, f"demo-{c.user}-{i}") for i, (at, text) in enumerate(said)]


async def load(
    rt: Runtime,
    *,
    customers: int = 300,
    seed: int = 7,
    drain: bool = True,
    progress: Any = None,
) -> dict[str, int]:
    """Write the demo population through the real feeds (idempotent: a second load adds
    nothing) and, with ``drain``, file it in the graph with an in-process worker."""
    people = population(rt.catalog, customers=customers, seed=seed)
    created_orders = created_messages = 0
    batch = 50
    for start in range(0, len(people), batch):
        async with rt.pool.acquire() as lent, lent.transaction():
            conn = cast(asyncpg.Connection, lent)
            chunk = people[start : start + batch]
            # a demo order already stored was loaded by an earlier run (perhaps on another
            # day, so with other dates): the demo is loaded once, never merged
            stored = await orders.existing_ids(conn, [o.order_id for c in chunk for o in c.orders])
            for c in chunk:
                for order in c.orders:
                    if order.order_id not in stored:
                        created_orders += await orders.record(conn, c.user, order)
                if c.messages:
                    session = uuid.uuid5(uuid.NAMESPACE_URL, f"loft-demo:{c.user}")
                    at = c.messages[0].created_at or datetime.now(UTC)
                    await history.create_session(conn, c.user, session, at=at, channel="demo")
                    added = await history.add_messages(
                        conn, c.user, session, c.messages, summary_idle_s=rt.settings.summary_idle_s, lane="bulk"
                    )
                    created_messages += sum(m.created for m in added)
        if progress is not None:
            progress(min(batch, len(people) - start))
    handled = 0
    if drain:
        from service.worker import Worker

        handled = await Worker(rt).drain(timeout=1800)
    return {
        "customers": len(people),
        "orders": sum(len(c.orders) for c in people),
        "order_lines": sum(len(o.lines) for c in people for o in c.orders),
        "orders_created": created_orders,
        "messages": sum(len(c.messages) for c in people),
        "messages_created": created_messages,
        "jobs_run": handled,
    }
