"""``kasparro serve``, ``kasparro api`` and ``kasparro scheduler``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kasparro.cli.common import boot, fail, open_database
from kasparro.config import Settings
from kasparro.db.gate import SchemaGate
from kasparro.observability.logging import configure_logging_for, get_logger
from kasparro.observability.metrics import MULTIPROCESS_ENV

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

log = get_logger(__name__)
APP_FACTORY = "kasparro.api.app:create_app_from_env"

HostOption = Annotated[
    str | None, typer.Option("--host", help="Interface to bind (default: KASPARRO_HOST).")
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to bind (default: KASPARRO_PORT).")
]


def _boot_service() -> Settings:
    """Settings plus logging on stdout, where a service's container runtime collects it."""
    settings = boot(log=False)
    configure_logging_for(settings)
    return settings


def _server(app: FastAPI, settings: Settings, host: str | None, port: int | None) -> uvicorn.Server:
    import uvicorn

    from kasparro.api.app import settle_heap

    settle_heap()
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # keep the JSON logging configured at the entry point
        access_log=False,  # requests are logged by the API's own middleware
        lifespan="on",
        timeout_keep_alive=settings.http_keep_alive,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """An empty directory for the workers' HTTP metrics (prometheus-client's multiprocess mode),
    named in the environment the workers inherit, removed afterwards. A directory the operator
    set in ``PROMETHEUS_MULTIPROC_DIR`` is used as it is, and kept."""
    if os.environ.get(MULTIPROCESS_ENV):
        Path(os.environ[MULTIPROCESS_ENV]).mkdir(parents=True, exist_ok=True)
        yield
        return
    directory = tempfile.mkdtemp(prefix="kasparro-metrics-")
    os.environ[MULTIPROCESS_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def serve(host: HostOption = None, port: PortOption = None) -> None:
    """The API and the scheduler in one process: the first ETL pass starts at once, in the background."""
    from kasparro.api import create_app
    from kasparro.pipeline.scheduler import Scheduler, install_signal_handlers

    settings = _boot_service()
    engine = open_database(settings, upgrade=False)
    stop = threading.Event()
    gate = SchemaGate(engine, stop=stop)
    gate.open()  # a database that is not there yet: /health says 503 until it is
    server = _server(create_app(settings), settings, host, port)
    # uvicorn handles SIGTERM/SIGINT while serving and re-raises them when it is done; these
    # handlers receive them then and stop the scheduler after its batch in flight
    install_signal_handlers(stop)
    thread = Scheduler(settings, engine, stop=stop).start_in_thread(after=gate.wait)
    try:
        server.run()
    finally:
        stop.set()
        log.info("waiting for the scheduler to finish its batch in flight")
        thread.join()
        engine.dispose()
    if not server.started:
        fail("the API server could not start (is the port in use?)", 1)
    log.info("kasparro serve stopped cleanly")


def api(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
) -> None:
    """The API alone (no scheduler), for running several replicas behind a load balancer."""
    from kasparro.api import create_app
    from kasparro.pipeline.scheduler import install_signal_handlers

    settings = _boot_service()
    stop = threading.Event()
    # the schema is brought to head before serving, or as soon as the database answers
    SchemaGate(open_database(settings, upgrade=False), stop=stop, release=True).open()
    if workers > 1:
        import uvicorn

        with _shared_metrics_dir():
            uvicorn.run(
                APP_FACTORY,
                factory=True,
                host=host or settings.host,
                port=port or settings.port,
                workers=workers,
                log_config=None,
                access_log=False,
                timeout_keep_alive=settings.http_keep_alive,
            )
        return
    server = _server(create_app(settings), settings, host, port)
    # receives the signal uvicorn re-raises after its shutdown, so the process exits 0
    install_signal_handlers(stop, action="API stopped")
    try:
        server.run()
    finally:
        stop.set()
    if not server.started:
        fail("the API server could not start (is the port in use?)", 1)


def scheduler() -> None:
    """The scheduler alone: a pass at start, then on KASPARRO_SCHEDULE, until SIGTERM/SIGINT."""
    from kasparro.pipeline.scheduler import Scheduler, install_signal_handlers

    settings = _boot_service()
    engine = open_database(settings, upgrade=False)
    stop = threading.Event()
    install_signal_handlers(stop)
    gate = SchemaGate(engine, stop=stop)
    gate.open()
    try:
        if gate.wait():  # False: stopped before the database answered, or the upgrade failed
            Scheduler(settings, engine, stop=stop).run_forever()
    finally:
        engine.dispose()
    if gate.failed.is_set():
        fail("the schema could not be brought to head (see the error above)", 1)


def register(app: typer.Typer) -> None:
    """Attach the service commands to the main app."""
    app.command("serve")(serve)
    app.command("api")(api)
    app.command("scheduler")(scheduler)
