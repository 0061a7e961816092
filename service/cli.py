"""``loftmem``: run, migrate and inspect the LOFT memory service.

loftmem up        start what is missing (PostgreSQL, Neo4j), migrate, run a worker, serve the API
loftmem serve     serve the API only (stores must be configured or already running)
loftmem worker    run an ingestion worker
loftmem mcp       serve one customer's memory to an agent over MCP (stdio)
loftmem migrate   apply pending migrations to both stores and load the sample catalog
loftmem status    print GET /memory/status of a running API
loftmem env       print the embedded stack's connection settings as shell exports
loftmem stop      stop the embedded servers of this data dir
loftmem erase     forget a customer in every store (prints the receipt)
loftmem erasures  list recent erasure receipts
loftmem export    write everything held about a customer as one JSON document
loftmem demo      load the demo shop (customers, orders, chat) through the real feeds
loftmem catalog load FILE   load a catalog (JSON Lines or CSV) into Neo4j, all or nothing
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar

import typer

from service.errors import LoftError
from service.settings import Settings, get_settings, with_local_stack

if TYPE_CHECKING:
    from devstack import Stack
    from service.core.erasure import Receipt
    from service.core.memory import Memory
    from service.runtime import Runtime

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
log = logging.getLogger("loft.cli")


def _logging(verbose: bool = False) -> None:
    from service.logs import configure

    configure(get_settings().log_format, verbose=verbose)


def _fail(exc: Exception) -> NoReturn:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _dev_stack() -> ModuleType:
    """The embedded dev stack, which comes with a checkout of the repository (not the image)."""
    try:
        import devstack
    except ModuleNotFoundError as exc:
        if exc.name != "devstack":  # the dev stack is there but broken: say so
            raise
        _fail(LoftError("the embedded stores run from a checkout (`make run`); here, set DATABASE_URL and NEO4J_URI"))
    return devstack


def _env_of(settings: Settings) -> dict[str, str]:
    env = {
        "DATABASE_URL": settings.database_url or "",
        "NEO4J_URI": settings.neo4j_uri or "",
        "NEO4J_USER": settings.neo4j_user,
    }
    if settings.neo4j_password is not None:
        env["NEO4J_PASSWORD"] = settings.neo4j_password.get_secret_value()
    return env


@app.command()
def up(
    host: str = typer.Option(None, help="bind address (default LOFT_HOST, 127.0.0.1)"),
    port: int = typer.Option(None, help="API port (default LOFT_PORT, 8001)"),
    worker: bool = typer.Option(True, help="start an ingestion worker process"),
    verbose: bool = False,
) -> None:
    """Start everything (the `make run` command); Ctrl-C stops everything it started."""
    _logging(verbose)
    ensure_stack = _dev_stack().ensure_stack
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    open_api = _check_access(settings, host)
    stack, was_running = _start_stores(settings, ensure_stack)
    settings = stack.settings
    _offer_demo(settings)

    from devstack.supervisor import Supervisor

    # an embedded server that dies is started again; the API and the worker reconnect
    supervisor = Supervisor(neo4j=stack.neo4j, postgres=stack.postgres).start()
    worker_proc = _start_worker(settings) if worker else None
    _announce(settings, stack, host, port, open_api=open_api)
    try:
        _serve(settings, host, port)
    finally:
        supervisor.stop()
        if worker_proc is not None:
            _stop_worker(worker_proc)
        _stop_started(stack, was_running)
        typer.secho("LOFT memory stopped", err=True)


def _start_stores(settings: Settings, ensure_stack: Callable[[Settings], Stack]) -> tuple[Stack, dict[str, bool]]:
    """The embedded stores (started unless configured or running) at the current schema;
    also which of them were running already."""
    from service.stores import migrate_all

    before = with_local_stack(settings)
    was_running = {"postgres": before.database_url is not None, "neo4j": before.neo4j_uri is not None}
    t0 = time.monotonic()
    try:  # store and devstack errors carry their own explanation
        stack = ensure_stack(settings)
    except Exception as exc:
        _fail(exc)
    try:
        applied = asyncio.run(migrate_all(stack.settings))
    except Exception as exc:
        _stop_started(stack, was_running)  # leave nothing running that this call started
        _fail(exc)
    log.info("stores ready in %.1f s (migrations applied: %s)", time.monotonic() - t0, applied)
    return stack, was_running


def _offer_demo(settings: Settings) -> None:
    """In development, load the demo shop into empty stores (LOFT_DEMO=0 skips it)."""
    if settings.env != "development" or not settings.demo_on_empty:
        return
    loaded = asyncio.run(_demo_if_empty(settings))
    if loaded:
        typer.secho(
            f"Empty stores: loaded the demo shop ({loaded['customers']} customers, {loaded['orders']} orders); "
            "the worker files it in the graph in the next minute (LOFT_DEMO=0 skips this)",
            err=True,
        )


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = os.environ | _env_of(settings)
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _announce(settings: Settings, stack: Stack, host: str, port: int, *, open_api: bool) -> None:
    """Where the chat page, the API's docs, its status and the Neo4j Browser are."""
    http = settings.neo4j_http_port if settings.neo4j_uri and stack.neo4j else None
    banner = f"LOFT memory: chat http://{host}:{port}/  ·  API docs http://{host}:{port}/docs  ·  status http://{host}:{port}/memory/status"
    if http:
        banner += f"  ·  Neo4j Browser http://127.0.0.1:{http}/browser/ (user neo4j, password: loftmem env)"
    typer.secho(banner, fg=typer.colors.GREEN, err=True)
    if open_api:
        typer.secho(
            f"No API keys configured: every route is open, so the API listens on {host} only "
            "(set LOFT_API_KEYS to serve other machines).",
            fg=typer.colors.YELLOW,
            err=True,
        )


async def _demo_if_empty(settings: Settings) -> dict[str, int] | None:
    """Write the demo shop's rows when there is no customer yet; the worker files them."""
    from devstack import demo
    from service.core.memory import Memory as Core
    from service.retrieval import Retriever
    from service.runtime import Runtime

    rt = await Runtime.open(settings, pool_size=2)
    try:
        if await Core(rt, Retriever(rt)).customer_count() > 0:
            return None
        return await demo.load(rt, drain=False)
    finally:
        await rt.close()


def _check_access(settings: Settings, host: str) -> bool:
    """Stop (exit 2) on a malformed key configuration, or on an open API bound to a
    non-loopback address; returns whether the API runs without keys."""
    from service.api.access import KeyRing, check_bind

    try:
        check_bind(settings, host)
        return KeyRing.from_settings(settings).open
    except LoftError as exc:
        _fail(exc)


def _stop_started(stack: Stack, was_running: dict[str, bool]) -> None:
    """Stop the embedded servers this process started (not ones it found running)."""
    if stack.neo4j is not None and not was_running["neo4j"]:
        stack.neo4j.stop()
    if stack.postgres is not None and not was_running["postgres"]:
        stack.postgres.stop()


def _event_loop_and_parser() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools (both come with ``uvicorn[standard]``), named rather than left
    to uvicorn's "auto", so a missing one is a logged choice, not a silent slowdown."""
    from importlib.util import find_spec

    loop: Literal["uvloop", "asyncio"] = "uvloop" if find_spec("uvloop") else "asyncio"
    http: Literal["httptools", "h11"] = "httptools" if find_spec("httptools") else "h11"
    if (loop, http) != ("uvloop", "httptools"):
        log.warning("serving with the %s event loop and the %s HTTP parser (slower)", loop, http)
    return loop, http


def _serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    from service.api.app import create_app

    loop, http = _event_loop_and_parser()
    if workers > 1:
        # each process builds its app from the environment (settings resolved above)
        os.environ.update(_env_of(settings))
        uvicorn.run(
            "service.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            loop=loop,
            http=http,
        )
        return
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False, loop=loop, http=http)


@app.command()
def serve(
    host: str = typer.Option(None),
    port: int = typer.Option(None),
    workers: int = typer.Option(1, min=1, max=32, help="API processes (each loads the embedding model)"),
    verbose: bool = False,
) -> None:
    """Serve the API against configured (or already running embedded) stores."""
    _logging(verbose)

    settings = with_local_stack(get_settings())
    if not settings.database_url or not settings.neo4j_uri:
        _fail(LoftError("no stores: set DATABASE_URL and NEO4J_URI, or run `loftmem up`"))
    host = host or settings.host
    if _check_access(settings, host):
        log.warning("no API keys configured: every route is open, listening on %s only", host)
    _serve(settings, host, port or settings.port, workers)


@app.command()
def worker(
    once: bool = typer.Option(False, help="drain the queue and exit"),
    metrics_port: int = typer.Option(
        None, min=0, max=65535, help="serve this worker's Prometheus metrics on LOFT_HOST:PORT/metrics (0: off)"
    ),
    verbose: bool = False,
) -> None:
    """Run an ingestion worker (many may run at once)."""
    _logging(verbose)
    from service.worker import run_worker

    settings = with_local_stack(get_settings())
    if not settings.database_url or not settings.neo4j_uri:
        _fail(LoftError("no stores: set DATABASE_URL and NEO4J_URI, or run `loftmem up`"))
    try:
        asyncio.run(run_worker(settings, once=once, metrics_port=metrics_port))
    except KeyboardInterrupt:
        pass
    except LoftError as exc:
        _fail(exc)


@app.command()
def mcp(
    user: str = typer.Option(..., "--user", help="the customer this MCP server acts for (fixed for the process)"),
    admin: bool = typer.Option(False, help="also allow delete_all_memories (erasing the customer)"),
    verbose: bool = False,
) -> None:
    """Serve one customer's memory to an agent over MCP on stdin/stdout (a desktop agent's
    config starts it). Logs go to stderr; stdout carries only the protocol."""
    import re

    from loft_memory.models import USER_ID_PATTERN

    _logging(verbose)  # a StreamHandler writes to stderr: stdout stays the protocol's
    if not re.fullmatch(USER_ID_PATTERN, user):
        _fail(LoftError(f"'{user}' is not a customer identifier ({USER_ID_PATTERN})"))
    from service.api.mcp_server import serve_stdio

    settings = with_local_stack(get_settings())
    if not settings.database_url or not settings.neo4j_uri:
        _fail(LoftError("no stores: set DATABASE_URL and NEO4J_URI, or run `loftmem up`"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_stdio(settings, user, admin=admin))


@app.command()
def migrate(
    start: bool = typer.Option(True, help="start the embedded servers if not configured"), verbose: bool = False
) -> None:
    """Apply pending migrations to PostgreSQL and Neo4j, and load the sample catalog."""
    _logging(verbose)
    from service.stores import migrate_all

    try:
        settings = _dev_stack().ensure_stack(get_settings()).settings if start else with_local_stack(get_settings())
        applied = asyncio.run(migrate_all(settings))
    except Exception as exc:
        _fail(exc)
    for store, names in applied.items():
        typer.echo(f"{store}: {', '.join(names) if names else 'up to date'}")


@app.command()
def status(url: str = typer.Option(None, help="API base URL (default http://LOFT_HOST:LOFT_PORT)")) -> None:
    """Print the running API's /memory/status."""
    import json

    import httpx

    settings = get_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    try:
        response = httpx.get(f"{base}/memory/status", timeout=10)
    except httpx.HTTPError as exc:
        _fail(LoftError(f"no API answers at {base} ({exc}); start it with `make run`"))
    typer.echo(json.dumps(response.json(), indent=2))
    raise typer.Exit(code=0 if response.status_code == 200 else 1)


@app.command()
def env() -> None:
    """Print the running embedded stack's settings as `export` lines (eval "$(loftmem env)")."""

    settings = with_local_stack(get_settings())
    if not settings.database_url and not settings.neo4j_uri:
        _fail(LoftError(f"no embedded server is running under {settings.data_dir}; start it with `make run`"))
    for key, value in _env_of(settings).items():
        if value:
            typer.echo(f"export {key}={shlex.quote(value)}")


def _with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work(rt)`` against the configured (or running embedded) stores."""
    from service.runtime import Runtime as OpenRuntime

    settings = with_local_stack(get_settings())
    if not settings.database_url or not settings.neo4j_uri:
        _fail(LoftError("no stores: set DATABASE_URL and NEO4J_URI, or run `loftmem up`"))

    async def run() -> T:
        rt = await OpenRuntime.open(settings, pool_size=2)
        try:
            return await work(rt)
        finally:
            await rt.close()

    try:
        return asyncio.run(run())
    except LoftError as exc:
        _fail(exc)


def _with_core(work: Callable[[Memory], Awaitable[T]]) -> T:
    """Run ``work(core)``: the same core the API and the MCP server call."""
    from service.core.memory import Memory as Core
    from service.retrieval import Retriever

    return _with_runtime(lambda rt: work(Core(rt, Retriever(rt))))


def _receipt_json(receipt: Receipt) -> str:
    import json

    return json.dumps(receipt.wire().model_dump(mode="json"), indent=2)


@app.command()
def erase(
    user: str = typer.Argument(..., help="the customer's identifier"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Forget a customer in PostgreSQL, Neo4j, caches and the queue; print the receipt.
    Exit code 0: complete; 3: pending (a store is down; a worker finishes it)."""
    import re

    from loft_memory.models import USER_ID_PATTERN

    _logging()
    if not re.fullmatch(USER_ID_PATTERN, user):
        _fail(LoftError(f"'{user}' is not a customer identifier ({USER_ID_PATTERN})"))
    if not yes:
        typer.confirm(f"Erase every trace of customer '{user}'? This cannot be undone", abort=True)
    from service.core.principal import CLI

    receipt = _with_core(lambda core: core.erase(user, by=CLI))
    typer.echo(_receipt_json(receipt))
    raise typer.Exit(code=0 if receipt.status == "complete" else 3)


@app.command()
def export(
    user: str = typer.Argument(..., help="the customer's identifier"),
    out: str = typer.Option(None, "--out", "-o", help="write to this file (default: standard output)"),
) -> None:
    """Write everything both stores hold about a customer as one JSON document (the format
    of GET /memory/user/{id}/export, docs/export.schema.json), streamed as it is read.
    Audited as the operator ('cli')."""
    import re
    from pathlib import Path

    from loft_memory.models import USER_ID_PATTERN
    from service.core.principal import CLI

    _logging()
    if not re.fullmatch(USER_ID_PATTERN, user):
        _fail(LoftError(f"'{user}' is not a customer identifier ({USER_ID_PATTERN})"))

    target = Path(out).open("wb") if out else sys.stdout.buffer  # noqa: SIM115 (closed below)

    async def work(core: Memory) -> int:
        written = 0
        async for chunk in await core.export(user, by=CLI):
            target.write(chunk)  # a command-line tool: nothing else waits on this loop
            written += len(chunk)
        return written

    try:
        written = _with_core(work)
    finally:
        if out:
            target.close()
        else:
            target.flush()
    if out:
        typer.echo(f"wrote {written} bytes to {out}", err=True)


@app.command()
def erasures(
    user: str = typer.Option(None, "--user", help="only this customer's receipts (matched by the keyed hash)"),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """List recent erasure receipts, newest first."""
    _logging()
    found = _with_core(lambda core: core.receipts(user=user, limit=limit))
    if not found:
        typer.echo("no erasure receipts")
    for r in found:
        pg = sum((r.counts.get("postgres") or {}).values())
        neo = r.counts.get("neo4j") or {}
        typer.echo(
            f"{r.receipt_id}  {r.status:<8}  requested {r.requested_at:%Y-%m-%d %H:%M:%S}  "
            f"postgres rows {pg}  neo4j nodes {neo.get('nodes', '-')} rels {neo.get('relationships', '-')}"
            + (f"  ({r.error})" if r.error else "")
        )


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL and Neo4j of this data dir."""
    _logging()
    _dev_stack()
    from devstack.neo4j import EmbeddedNeo4j
    from devstack.postgres import EmbeddedPostgres

    settings = get_settings()
    EmbeddedNeo4j(settings.data_dir / "neo4j", cache_dir=settings.cache_dir).stop()
    EmbeddedPostgres(settings.data_dir / "postgres").stop()
    typer.echo("stopped")


@app.command()
def demo(
    customers: int = typer.Option(300, min=1, max=20000, help="how many demo customers"),
    seed: int = typer.Option(7, help="the same seed gives the same shop"),
    drain: bool = typer.Option(True, help="file everything in the graph now (else a running worker does)"),
) -> None:
    """Load the demo shop: customers with orders following co-purchase patterns, and chat."""
    _logging(False)
    from rich.progress import Progress

    from devstack import demo as demo_module

    async def work(rt: Runtime) -> dict[str, int]:
        with Progress(transient=True) as bar:
            task = bar.add_task("writing customers", total=customers)
            loaded = await demo_module.load(
                rt, customers=customers, seed=seed, drain=False, progress=lambda n: bar.advance(task, n)
            )
            if drain:
                bar.add_task("filing the graph (worker)", total=None)
                from service.worker import Worker

                loaded["jobs_run"] = await Worker(rt).drain(timeout=1800)
        return loaded

    loaded = _with_runtime(work)
    typer.echo(json.dumps(loaded))


catalog_app = typer.Typer(no_args_is_help=True, help="The product catalog in Neo4j.")
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("load")
def catalog_load(
    file: str = typer.Argument(..., help="a .jsonl (JSON Lines) or .csv file of products"),
    partial: bool = typer.Option(False, help="only add and update: do not discontinue products the file omits"),
    dry_run: bool = typer.Option(False, help="check the file and print the summary without writing"),
) -> None:
    """Load the catalog (sku, name, category, style, material, colour, brand, price, in_stock, consumable):
    all or nothing, with a summary of added, changed and discontinued products."""
    _logging(False)
    from dataclasses import asdict
    from pathlib import Path

    from rich.progress import Progress

    from service.catalog import feed as catalog_feed

    path = Path(file)
    if not path.is_file():
        _fail(LoftError(f"no such file: {file}"))
    parsed = catalog_feed.read(path)
    if parsed.errors:
        report = {
            "error": "validation_error",
            "detail": f"{len(parsed.errors)} bad line(s) in {path.name}; nothing was loaded",
            "lines": [asdict(e) for e in parsed.errors],
        }
        typer.echo(json.dumps(report, indent=2))
        raise typer.Exit(1)

    async def work(core: Memory) -> catalog_feed.Summary:
        if dry_run:
            return await core.load_catalog(parsed.products, full=not partial, dry_run=True)
        with Progress(transient=True) as bar:
            task = bar.add_task(f"loading {len(parsed.products)} products", total=len(parsed.products))
            return await core.load_catalog(parsed.products, full=not partial, progress=lambda n: bar.advance(task, n))

    summary = _with_core(work)
    out = {"file": str(path), "products": len(parsed.products), "dry_run": dry_run, **summary.counts()}
    out["examples"] = {k: v[:10] for k, v in vars(summary).items() if v and k != "unchanged"}
    typer.echo(json.dumps(out))


if __name__ == "__main__":
    app()
