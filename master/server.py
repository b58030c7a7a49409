"""Run the whole master in one asyncio loop: HTTPS + Socket.IO, gRPC results, MQTT dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import socketio
from quart import Quart

from common.messages import CancelMessage
from common.mqtt_connect import BrokerAddress
from common.secret_files import ConfigError
from common.metrics_server import serve_metrics
from common.tls import TlsFiles
from common.topics import Topics
from master.admin_feed import AdminFeed, RecentAnswers
from master.api import register_api
from master.accounts import AccountError, Passwords, add_user, check_password, count_users
from master.auth import Auth
from master.bus import MasterBus
from master.chat_events import ChatEvents, create_socketio
from master.conversation_events import ConversationEvents
from master.conversations import Conversations
from master.login_throttle import LoginThrottle
from master.delivery import Delivery, DeliveryStats
from master.dispatcher import Dispatcher, FanOut
from master.metrics import MetricsJournal, sample
from master.model_feed import ModelFeed
from master.health import HealthCheck
from master.http_app import create_http_app
from master.intake import Intake
from master.https_server import serve_https
from master.registry import WorkerRegistry
from master.retention import run_retention
from master.response_cache import ResponseCache
from master.results import run_results_server
from master.security_headers import SecurityHeaders
from master.session_watch import SessionWatch
from master.socketio_gate import SocketIOGate
from master.sessions import CookieSigner, SessionLifetime
from master.settings import MasterSettings
from master.static_files import StaticFiles
from master.stream_events import StreamEvents
from master.streaming import ChunkRelay
from master.task_journal import TaskJournal, load_open_tasks
from master.store import Database, open_database
from master.user_limits import Limits, UserLimiter

logger = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 1.0
STATS_INTERVAL_S = 30.0


@dataclass
class RunningMaster:
    settings: MasterSettings
    web_port: int
    grpc_port: int
    dispatcher: Dispatcher
    bus: MasterBus
    db: Database
    chat: ChatEvents
    auth: Auth
    metrics_port: int | None
    http: Quart


async def seed_initial_admin(settings: MasterSettings, db: Database, auth: Auth) -> None:
    """At the first start of an empty store, create the admin from INITIAL_ADMIN_PASSWORD_FILE (if set)."""
    if settings.initial_admin_password_file is None or await db.run(count_users) > 0:
        return
    try:
        password = check_password(settings.initial_admin_password())
    except AccountError as exc:
        raise ConfigError(f"INITIAL_ADMIN_PASSWORD_FILE={settings.initial_admin_password_file}: {exc}") from None
    await db.run(add_user, settings.initial_admin_name, await auth.hash_password(password), "admin")
    logger.info("created the first admin user %r from INITIAL_ADMIN_PASSWORD_FILE", settings.initial_admin_name)


def user_limits(settings: MasterSettings) -> Limits:
    return Limits(per_minute=settings.rate_per_minute, burst=settings.rate_burst,
                  open_tasks=settings.max_open_tasks_per_user, daily_quota=settings.daily_quota,
                  exempt_admins=settings.limits_exempt_admins)


async def _sweep(dispatcher: Dispatcher, stats: DeliveryStats, chat: ChatEvents) -> None:
    """Once a second: expire silent workers and overdue tasks, set the gauges; every 30 s: one INFO summary line."""
    ticks = 0
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        dispatcher.sweep()
        sample(dispatcher, len(chat.connections))
        ticks += 1
        if ticks * SWEEP_INTERVAL_S >= STATS_INTERVAL_S:
            stats.log_and_reset(ticks * SWEEP_INTERVAL_S, dispatcher.queued, dispatcher.registry.live_count())
            ticks = 0


@contextlib.asynccontextmanager
async def run_master(settings: MasterSettings) -> AsyncIterator[RunningMaster]:
    """The composition root: build every part in dependency order, start them, stop them all on exit."""
    password = settings.mqtt_password()
    tls = settings.tls()
    tls.check()
    db = await open_database(settings.database_file)
    lifetime = SessionLifetime(settings.session_idle_s, settings.session_max_s)
    auth = Auth(
        db, Passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib),
        CookieSigner(settings.session_secret()), lifetime,
        by_name=LoginThrottle(settings.login_max_failures, settings.login_lockout_s),
        by_address=LoginThrottle(settings.login_max_failures_per_address, settings.login_lockout_s),
    )
    try:
        await seed_initial_admin(settings, db, auth)
        async with _serve(settings, password, tls, db, auth, lifetime) as running:
            yield running
    finally:
        auth.close()
        db.close()


@contextlib.asynccontextmanager
async def _serve(settings: MasterSettings, password: str, tls: TlsFiles, db: Database, auth: Auth,
                 lifetime: SessionLifetime) -> AsyncIterator[RunningMaster]:
    sio = create_socketio(settings)
    delivery = Delivery(sio)
    journal = TaskJournal(db)
    recent = RecentAnswers()
    cache = ResponseCache(settings.response_cache_ttl_s, settings.response_cache_max_entries,
                          settings.response_cache_shared)
    relay = ChunkRelay(lambda event, data, owner: sio.emit(event, data, to=owner),
                       settings.chunk_interval_s, settings.chunk_max_bytes)
    bus = MasterBus(password, settings.mqtt_tls(), BrokerAddress(settings.mqtt_host, settings.mqtt_port),
                    Topics(settings.topic_prefix))
    dispatcher = Dispatcher(
        WorkerRegistry(settings.worker_timeout_s, settings.max_worker_capacity),
        publish=bus.publish_task,
        deliver=delivery.deliver,
        task_timeout_s=settings.task_timeout_s,
        max_attempts=settings.max_attempts,
        max_queue=settings.max_queue,
        queue_timeout_s=settings.queue_timeout_s,
        worker_backoff_s=settings.worker_backoff_s,
        lease_s=settings.lease_s,
        journal=FanOut(journal, MetricsJournal(), recent, cache, relay),
        bus_up=lambda: bus.connected,
        priority_aging_s=settings.priority_aging_s,
        on_chunk=relay.add,
        stop_worker=lambda worker_id, task: bus.publish_cancel(worker_id, CancelMessage(task_id=task.task_id,
                                                                                      token=task.token)),
    )
    restored = dispatcher.restore(await db.run(load_open_tasks))
    if restored:
        logger.info("%d unfinished tasks from the store are queued again or waiting for their worker", restored)
    limiter = UserLimiter(user_limits(settings))
    intake = Intake(dispatcher, settings, limiter, db, cache, durable=journal.durable)
    chat = ChatEvents(sio, intake, settings, auth, db)
    ConversationEvents(sio, chat, Conversations(db, dispatcher, journal, cache), journal)
    StreamEvents(sio, chat, dispatcher, relay)
    watch = SessionWatch(chat, db, lifetime, limiter)
    feed = AdminFeed(sio, dispatcher, recent, chat.admins_connected)
    models = ModelFeed(sio, dispatcher.registry, settings.default_model, lambda sid: sid in chat.connections)
    http = create_http_app(StaticFiles(), HealthCheck(lambda: bus.connected, dispatcher, db), auth,
                           settings.public_origins, settings.session_max_s, chat.on_logout)
    register_api(http, auth, db, intake, dispatcher, journal)
    asgi = SecurityHeaders(SocketIOGate(socketio.ASGIApp(sio, other_asgi_app=http), auth.session_for))
    with serve_metrics(settings.metrics_host, settings.metrics_port) as metrics_port:
        async with run_results_server(dispatcher, tls, settings.grpc_host, settings.grpc_port,
                                      durable=journal.durable) as grpc_port:
            async with serve_https(asgi, tls, settings.web_host, settings.web_port, settings.max_message_bytes) as web_port:
                bus.start(on_status=dispatcher.on_status, on_connected=dispatcher.on_bus_connected)
                sweeper = asyncio.create_task(_sweep(dispatcher, delivery.stats, chat))
                watcher = asyncio.create_task(watch.run())
                writer = asyncio.create_task(journal.run())
                feeder = asyncio.create_task(feed.run())
                model_pusher = asyncio.create_task(models.run())
                retention = asyncio.create_task(run_retention(db, journal, settings.conversation_retention_days,
                                                              settings.conversation_retention_interval_s))
                logger.info("master up: HTTPS on %s:%d, gRPC on %d", settings.web_host, web_port, grpc_port)
                try:
                    yield RunningMaster(settings, web_port, grpc_port, dispatcher, bus, db, chat, auth, metrics_port,
                                        http)
                finally:
                    sweeper.cancel()
                    watcher.cancel()
                    writer.cancel()
                    feeder.cancel()
                    model_pusher.cancel()
                    retention.cancel()
                    await bus.stop()
                    try:
                        await journal.flush()  # what the last interval changed
                    except Exception:
                        logger.exception("could not write the last task changes to the store")
                    try:
                        await watch.check_once()  # the last daily counts
                    except Exception:
                        logger.exception("could not save the last daily counts")
