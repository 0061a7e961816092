"""A sample customer history (for the chat page's "load sample data" and for trying the
service out): a few sessions over a month, with a name, tastes, a purchase, people, a pet
and a change of mind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from loft_memory.models import SampleDataResponse
from service.postgres import history
from service.runtime import Runtime

SAMPLE_HISTORY: list[tuple[int, list[tuple[str, str]]]] = [
    (
        30,
        [
            ("user", "Hi, my name is Sarah and I love modern furniture."),
            ("assistant", "Lovely to meet you, Sarah! Modern pieces are some of our favourites too."),
            ("user", "We just moved to Portland with my husband Tom and our dog Max."),
            ("user", "I'm looking for a sectional for the living room, ideally under $3,000."),
            ("user", "I really don't like glass tables, they show every fingerprint."),
        ],
    ),
    (
        12,
        [
            ("user", "I prefer oak for the dining table."),
            ("user", "Do you have oak dining tables?"),
            ("user", "I bought a walnut coffee table last week for the living room."),
        ],
    ),
    (
        2,
        [
            ("user", "Actually I prefer walnut now, it matches the coffee table."),
            ("user", "My sister Anna is visiting next month, so we need a guest bed."),
        ],
    ),
]


async def populate(rt: Runtime, user_identifier: str) -> SampleDataResponse:
    """Store the sample history as three sessions in the past (idempotent: fixed external ids)."""
    now = datetime.now(UTC)
    created = 0
    sessions = []
    async with rt.pool.acquire() as conn, conn.transaction():
        for days_ago, turns in SAMPLE_HISTORY:
            start = now - timedelta(days=days_ago)
            session_id = uuid.uuid5(uuid.NAMESPACE_URL, f"loft-sample:{user_identifier}:{days_ago}")
            await history.create_session(conn, user_identifier, session_id, at=start, channel="sample")
            stored = await history.add_messages(
                conn,
                user_identifier,
                session_id,
                [
                    history.NewMessage(role, text, start + timedelta(minutes=i), external_id=f"sample:{days_ago}:{i}")
                    for i, (role, text) in enumerate(turns)
                ],
                summary_idle_s=rt.settings.summary_idle_s,
            )
            created += sum(s.created for s in stored)
            sessions.append(str(session_id))
    return SampleDataResponse(
        user_identifier=user_identifier,
        sessions=sessions,
        messages_created=created,
        note="extraction runs in the background worker; the summary fills in within seconds",
    )
