"""The analysts' saved queries (``graph/queries/*.cypher``) and a Neo4j Browser guide of them.

Each file is one query, headed by comments: the question it answers (first lines), a
``Parameters:`` line that explains them, and one ``// :param name => expression`` line per
parameter with an example value, exactly as Neo4j Browser's ``:param`` command takes it.
So a file can be pasted into Browser (or dragged into its Favorites drawer) as it is, and
:func:`guide_html` turns all of them into a guide Browser plays with
``:play http://localhost:8001/analysts/guide``: one slide per question, the ``:param``
lines and the query as click-to-run blocks.

The same limits hold for every analyst query, run from Browser or from code: the server's
``db.transaction.timeout`` and ``db.memory.transaction.max`` (the embedded server sets
them: ``devstack/limits.py``), and :func:`run`'s own transaction timeout. A
question over the whole shop (``bought_together``) is ended by them on a large shop rather
than stalling the server for everyone.
"""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neo4j import AsyncDriver, Query, RoutingControl

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
_PARAM = re.compile(r"^//\s*:param\s+(\w+)\s*=>\s*(.+?)\s*$")


@dataclass(frozen=True)
class AnalystQuery:
    name: str  # the file's stem
    question: str  # the header's comment lines before the parameters
    parameters: str  # the header's "Parameters:" explanation
    params: dict[str, str]  # name -> a Cypher expression for an example value
    cypher: str  # the query without comments or the final semicolon

    def param_commands(self) -> list[str]:
        return [f":param {k} => {v}" for k, v in self.params.items()]


def parse(path: Path) -> AnalystQuery:
    question: list[str] = []
    parameters = ""
    params: dict[str, str] = {}
    body: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            m = _PARAM.match(stripped)
            text = stripped[2:].strip()
            if m:
                params[m.group(1)] = m.group(2)
            elif text.startswith("Parameters:"):
                parameters = text[len("Parameters:") :].strip()
            elif not body:
                question.append(text)
            continue
        body.append(line)
    cypher = "\n".join(body).strip().rstrip(";").strip()
    return AnalystQuery(path.stem, " ".join(question), parameters, params, cypher)


def load(directory: Path = QUERIES_DIR) -> list[AnalystQuery]:
    return [parse(p) for p in sorted(directory.glob("*.cypher"))]


ANALYST_TIMEOUT_S = 30.0
# the server checks its transactions' timeouts every db.transaction.monitor.check.interval
# (2 s by default): wait that much longer before giving up on the answer
MONITOR_S = 3.0


async def run(
    driver: AsyncDriver,
    query: AnalystQuery,
    *,
    database: str,
    timeout: float = ANALYST_TIMEOUT_S,
    **params: Any,
) -> list[dict[str, Any]]:
    """Run a saved query (read-only) with a transaction timeout: the server ends it after
    ``timeout`` seconds, and ``wait_for`` stops waiting :data:`MONITOR_S` after that."""
    records, _, _ = await asyncio.wait_for(
        driver.execute_query(
            Query(query.cypher, timeout=timeout), params, database_=database, routing_=RoutingControl.READ
        ),
        timeout + MONITOR_S,
    )
    return [dict(r) for r in records]


def guide_html(queries: list[AnalystQuery]) -> str:
    """A Neo4j Browser guide (HTML slides): one per query, each block runnable with a click."""
    slides = [
        """<slide class="row-fluid"><div class="col-sm-12">
<h3>LOFT: questions for the customer graph</h3>
<p class="lead">Each slide is one saved query from <code>graph/queries/</code>. Click a block to put it in
the editor: first the <code>:param</code> lines (example values; change them), then the query.</p>
<p>The server ends a query that runs longer than its transaction timeout or holds more memory than its
transaction limit (<code>db.transaction.timeout</code>, <code>db.memory.transaction.max</code>): narrow it
(a customer, a period, a category) and run it again.</p>
<p>The model: <code>(:Customer)-[:PURCHASED {order_id, at, qty, price, source}]-&gt;(:Product)</code>,
<code>(:Customer)-[:PREFERS|DISLIKES {valid_from, valid_to}]-&gt;(:Style|:Material|:Color|:Category|:Brand)</code>,
<code>(:Product)-[:IN_CATEGORY|HAS_STYLE|MADE_OF|HAS_COLOR|MADE_BY]-&gt;(…)</code>,
<code>(:Customer)-[:ASKED_ABOUT]-&gt;(:Product|:Category)</code>,
<code>(:Customer)-[:MENTIONED]-&gt;(:Entity)</code>.</p>
</div></slide>"""
    ]
    for q in queries:
        params = "\n".join(html.escape(c) for c in q.param_commands())
        slides.append(
            f"""<slide class="row-fluid"><div class="col-sm-12">
<h3>{html.escape(q.name.replace("_", " "))}</h3>
<p class="lead">{html.escape(q.question)}</p>
<p>{html.escape(q.parameters)}</p>
{f'<pre class="pre-scrollable code runnable">{params}</pre>' if params else ""}
<pre class="pre-scrollable code runnable">{html.escape(q.cypher)}</pre>
</div></slide>"""
        )
    return (
        '<article class="guide"><carousel class="deck container-fluid">\n'
        + "\n".join(slides)
        + "\n</carousel></article>\n"
    )
