"""LLM calls other than extraction and replies: conversation summaries."""

from __future__ import annotations

from service.runtime import Runtime

SUMMARY_PROMPT = """Summarise this conversation between a furniture store's assistant and a customer in
2-4 sentences for the store's memory: who the customer is, what they want, what they decided or
bought, with dates. Plain text only."""


async def summarize(rt: Runtime, rows) -> str:
    transcript = "\n".join(
        f"[{r['created_at']:%Y-%m-%d %H:%M}] {r['speaker'] or r['role']}: {r['content']}" for r in rows[-200:]
    )
    response = await rt.llm.chat.completions.create(
        model=rt.settings.llm_model,
        messages=[{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": transcript[-24000:]}],
        temperature=0.2,
    )
    text = (response.choices[0].message.content or "").strip()
    if not text:
        raise ValueError("empty summary")
    return text
