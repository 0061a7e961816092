"""What retrieval runs and how it weighs what it finds: one frozen Pydantic config.

Which sources run, how many candidates each returns, how they are fused, expanded,
boosted and packed. Named presets are copies of the default (``model_copy``), never
mutated globals; a request picks one with ``?preset=``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# the budget's unit: a token is counted as four characters of prompt text
CHARS_PER_TOKEN = 4


class Source(BaseModel):
    model_config = ConfigDict(frozen=True)
    enabled: bool = True
    limit: int = Field(default=20, ge=0, le=500)
    weight: float = Field(default=1.0, ge=0)


class RetrievalConfig(BaseModel):
    """Which sources run, how many candidates each returns, how they are fused."""

    model_config = ConfigDict(frozen=True)
    memories_vector: Source = Source(limit=30, weight=1.0)
    memories_text: Source = Source(limit=20, weight=0.7)
    messages_vector: Source = Source(limit=40, weight=1.0)
    messages_text: Source = Source(limit=40, weight=0.9)
    # turns inside the period the question names ("last May"), nearest first
    messages_period: Source = Source(limit=10, weight=0.8)
    summaries_vector: Source = Source(limit=4, weight=0.4)
    summaries_text: Source = Source(limit=4, weight=0.3)
    graph_profile: Source = Source(limit=30, weight=0.6)
    graph_entities: Source = Source(limit=8, weight=0.5)
    recent_turns: Source = Source(limit=6, weight=1.0)
    rrf_k: float = Field(default=60.0, gt=0)
    # expansion
    neighbour_hits: int = Field(default=10, ge=0, description="top message hits expanded with their neighbours")
    neighbour_width: int = Field(default=2, ge=0, le=5)
    neighbour_decay: float = Field(default=0.55, ge=0, le=1)
    entity_mentions: int = Field(default=3, ge=0, description="turns pulled in per matched entity")
    # a second round seeded by the first round's entities: the turns that mention an entity
    # one of the best hits mentions
    co_mention_hits: int = Field(default=0, ge=0, description="best message hits whose entities are followed")
    co_mention_decay: float = Field(default=0.5, ge=0, le=1)
    co_mention_max: int = Field(default=12, ge=2, description="an entity in more turns than this is too common")
    # boosts
    importance_weight: float = Field(default=0.3, ge=0)
    recency_weight: float = Field(default=0.1, ge=0)
    recency_half_life_days: float = Field(default=60.0, gt=0)
    period_boost: float = Field(default=1.6, ge=1)
    now_recency_weight: float = Field(
        default=1.0, ge=0, description="recency's weight when the question asks about now ('my current…')"
    )
    other_speaker_weight: float = Field(
        default=0.6, ge=0, description="a turn said by someone other than the speakers the question names"
    )
    assistant_weight: float = Field(
        default=0.5, ge=0, description="the assistant's own turns matter less than the customer's"
    )
    # packing
    max_item_chars: int = Field(default=320, ge=40, description="a long text is clipped to at least this")
    item_share: float = Field(
        default=0.15, ge=0, le=1, description="…or to this share of the budget, when larger: fewer, fuller items"
    )
    session_share: float = Field(default=0.3, ge=0, le=1, description="most of the budget the current session may take")
    # the best turns are listed whole (up to max_item_chars); past short_items_after of the
    # budget, a turn is listed by its opening short_item_chars (0: never): a context then
    # holds more pieces of evidence, which list questions ("What books has Tim read?") need.
    # A turn too long to list whole keeps its window around what matched: its answer is
    # there, not in its opening
    short_item_chars: int = Field(default=140, ge=0, description="a turn past short_items_after of the budget")
    short_items_after: float = Field(default=0.5, ge=0, le=1)
    # diversity (maximal marginal relevance on the stored embeddings): a candidate's score is
    # multiplied by 1 - mmr_weight * max(0, (s - mmr_threshold) / (1 - mmr_threshold)), s its
    # highest cosine similarity to an item already packed; 0 turns it off (and the embeddings
    # are then not read)
    mmr_weight: float = Field(default=0.0, ge=0, le=1)
    mmr_threshold: float = Field(default=0.5, ge=0, lt=1)


def item_chars(config: RetrievalConfig, budget: int) -> int:
    """How long one item's text may be at ``budget`` tokens."""
    return max(config.max_item_chars, int(budget * CHARS_PER_TOKEN * config.item_share))


DEFAULT = RetrievalConfig()
PRESETS: dict[str, RetrievalConfig] = {
    "default": DEFAULT,
    # fewer candidates, no expansion: lowest latency
    "fast": DEFAULT.model_copy(
        update={
            "memories_text": Source(limit=10, weight=0.7),
            "messages_vector": Source(limit=20, weight=1.0),
            "messages_text": Source(limit=20, weight=0.9),
            "summaries_text": Source(enabled=False),
            "graph_entities": Source(enabled=False),
            "neighbour_hits": 0,
        }
    ),
    # more candidates and wider expansion: best recall for large budgets
    "deep": DEFAULT.model_copy(
        update={
            "messages_vector": Source(limit=80, weight=1.0),
            "messages_text": Source(limit=80, weight=0.9),
            "memories_vector": Source(limit=60, weight=1.0),
            "neighbour_hits": 20,
            "neighbour_width": 2,
        }
    ),
    # graph and memories only: what the customer is like, not what they said
    "profile": DEFAULT.model_copy(
        update={
            "messages_vector": Source(enabled=False),
            "messages_text": Source(enabled=False),
            "messages_period": Source(enabled=False),
            "summaries_vector": Source(enabled=False),
            "summaries_text": Source(enabled=False),
            "neighbour_hits": 0,
        }
    ),
}
