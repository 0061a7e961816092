"""The LLM extractor: the same typed facts as the rules, from any OpenAI-compatible model.

The model is asked for one JSON object matching ``Extraction``'s JSON schema; the answer
is parsed and validated by Pydantic (one retry with the validation error on failure).
Catalog matching stays deterministic: product names the model returns are resolved to
SKUs here, never trusted as SKUs.
"""

from __future__ import annotations

import json
from datetime import datetime

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError

from service.catalog import Catalog
from service.extraction.models import Extraction

PROMPT = """You extract facts about a furniture store's customer from one chat message.
Return ONLY a JSON object that matches this JSON schema:
{schema}

Rules:
- Only facts the message states; nothing inferred from general knowledge.
- Preferences use canonical values from these lists when they match:
  styles: {styles}
  materials: {materials}
  colors: {colors}
  categories: {categories}
- Resolve relative dates ("last Tuesday", "yesterday") against the message time {at}; write dates in
  ISO 8601.
- memories: standalone third-person statements naming {who} and absolute dates, e.g.
  "{who} bought an oak dining table on 14 May 2024."
- replaces=true only for an explicit change of mind ("actually", "now prefer", "no longer")."""


class LLMExtractor:
    def __init__(self, client: AsyncOpenAI, model: str, catalog: Catalog) -> None:
        self.client = client
        self.model = model
        self.catalog = catalog

    async def extract(self, text: str, *, at: datetime, speaker: str | None = None, role: str = "user") -> Extraction:
        if role != "user" or not text.strip():
            return Extraction()
        system = PROMPT.format(
            schema=json.dumps(Extraction.model_json_schema()),
            styles=", ".join(self.catalog.styles),
            materials=", ".join(self.catalog.materials),
            colors=", ".join(self.catalog.colors),
            categories=", ".join(self.catalog.categories),
            at=at.isoformat(),
            who=speaker or "the customer",
        )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": text},
        ]
        last_error: Exception | None = None
        for _ in range(2):
            response = await self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0, response_format={"type": "json_object"}
            )
            content = response.choices[0].message.content or ""
            try:
                return self._resolve(Extraction.model_validate_json(content))
            except ValidationError as exc:
                last_error = exc
                messages += [
                    {"role": "assistant", "content": content},
                    {
                        "role": "user",
                        "content": f"That JSON did not validate: {exc.errors()[:5]}. Return corrected JSON only.",
                    },
                ]
        raise ValueError(f"the model's extraction did not validate twice: {last_error}")

    def _resolve(self, extraction: Extraction) -> Extraction:
        for purchase in extraction.purchases:
            products = self.catalog.match_products(purchase.product_name)
            purchase.sku = products[0].sku if products else None
            if products:
                purchase.category = products[0].category
        for pref in extraction.preferences:
            if pref.attribute == "product":
                products = self.catalog.match_products(pref.value)
                if products:
                    pref.value = products[0].sku
        return extraction
