"""The production master and workers, in-process, against the real broker; and a Socket.IO test client."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from devstack.local_broker import RunningBroker, free_port
from devstack.login_client import LoginFailed, login_cookie as _login_cookie  # noqa: F401 (LoginFailed re-exported)
from devstack.users import FAST_HASH
from common.tls import TlsFiles, client_context
from master.accounts import add_user
from master.server import RunningMaster, run_master
from master.sessions import COOKIE_NAME
from master.settings import MasterSettings
from tests.pki_helpers import Pki
from worker.backends.base import ModelBackend
from worker.service import Worker, run_worker
from worker.settings import WorkerSettings


# Tests log in many times: a cheap argon2id cost (the production default is in MasterSettings).
TEST_HASH_MEMORY_KIB = 8192


def master_settings(pki: Pki, broker: RunningBroker, web_port: int, **overrides: Any) -> MasterSettings:
    values: dict[str, Any] = dict(
        mqtt_host="127.0.0.1", mqtt_port=broker.port, mqtt_password_file=pki.password_path("master"),
        tls_ca_file=pki.ca, tls_cert_file=pki.cert("master"), tls_key_file=pki.key("master"),
        web_host="127.0.0.1", web_port=web_port, grpc_host="127.0.0.1", grpc_port=0,
        public_origins=f"https://127.0.0.1:{web_port},https://localhost:{web_port}",
        database_file=Path(tempfile.mkdtemp(prefix="aisys-store-")) / "master.db",
        password_hash_memory_kib=TEST_HASH_MEMORY_KIB,
        # Tests ask quickly; the limits have tests of their own that set them.
        rate_per_minute=0, max_open_tasks_per_user=0,
    )
    values.update(overrides)
    return MasterSettings(**values)


def worker_settings(pki: Pki, broker: RunningBroker, grpc_port: int, worker_id: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = dict(
        worker_id=worker_id, mqtt_host="127.0.0.1", mqtt_port=broker.port,
        mqtt_password_file=pki.password_path("worker"),
        tls_ca_file=pki.ca, tls_cert_file=pki.cert("worker"), tls_key_file=pki.key("worker"),
        results_endpoint=f"127.0.0.1:{grpc_port}", results_tls_server_name="localhost",
        heartbeat_s=5.0,
    )
    values.update(overrides)
    return WorkerSettings(**values)


@dataclass(frozen=True)
class Account:
    name: str
    password: str


@dataclass
class Stack:
    master: RunningMaster
    pki: Pki
    workers: list[Worker] = field(default_factory=list)
    # A logged-in user for tests that just want to chat.
    cookie: str = ""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.master.web_port}"

    async def new_user(self, role: str = "user", name: str | None = None) -> Account:
        account = Account(name or f"u{secrets.token_hex(4)}", secrets.token_urlsafe(12))
        await self.master.db.run(add_user, account.name, FAST_HASH.hash(account.password), role)
        return account

    async def login(self, account: Account) -> str:
        return await login_cookie(self.pki, self.url, account.name, account.password)


async def login_cookie(pki: Pki, url: str, name: str, password: str) -> str:
    """Log in as a browser does; the session cookie's value (LoginFailed when refused)."""
    return await _login_cookie(url, client_context(pki.tls()), name, password)


def https_session(tls: TlsFiles) -> aiohttp.ClientSession:
    """An aiohttp session that trusts `tls.ca` (and presents `tls`'s certificate, if it has one)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(tls)))


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def local_stack(
    pki: Pki,
    broker: RunningBroker,
    workers: int = 2,
    capacity: int = 4,
    backend_factory: Any = None,
    master_overrides: dict[str, Any] | None = None,
    worker_overrides: dict[str, Any] | None = None,
    prefix: str = "w",
) -> AsyncIterator[Stack]:
    """Master + `workers` workers on the real broker; yields when every worker is registered and idle."""

    run_id = secrets.token_hex(3)
    settings = master_settings(pki, broker, free_port(), **(master_overrides or {}))
    async with run_master(settings) as master, contextlib.AsyncExitStack() as stack:
        result = Stack(master, pki)
        result.cookie = await result.login(await result.new_user())
        for i in range(workers):
            ws = worker_settings(pki, broker, master.grpc_port, f"{prefix}{run_id}-{i}", capacity=capacity,
                                 **(worker_overrides or {}))
            backend: ModelBackend | None = backend_factory() if backend_factory else None
            result.workers.append(await stack.enter_async_context(run_worker(ws, backend)))
        ids = {w.settings.worker_id for w in result.workers}
        registry = master.dispatcher.registry
        await wait_until(
            lambda: all(registry.workers.get(i) and registry.workers[i].state == "idle" for i in ids),
            what="workers to register",
        )
        yield result


class ChatClient:
    """A python-socketio client over HTTPS that trusts only our CA; collects responses and errors."""

    def __init__(self, pki: Pki, origin: str | None = None, cookie: str | None = None) -> None:
        self.pki = pki
        self.origin = origin
        self.cookie = cookie
        self.responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sio: socketio.AsyncClient | None = None

    async def connect(self, url: str, transports: tuple[str, ...] = ("websocket",)) -> None:
        session = https_session(self.pki.tls())
        self.sio = socketio.AsyncClient(http_session=session, reconnection=False)
        self.sio.on("ai-response", lambda data: self.responses.put_nowait({"event": "ai-response", **data}))
        self.sio.on("ai-error", lambda data: self.responses.put_nowait({"event": "ai-error", **data}))
        headers = {"Origin": self.origin} if self.origin else {}
        if self.cookie:
            headers["Cookie"] = f"{COOKIE_NAME}={self.cookie}"
        try:
            await self.sio.connect(url, transports=list(transports), headers=headers, wait_timeout=5)
        except BaseException:
            await session.close()
            raise

    async def ask(self, text: Any) -> dict[str, Any]:
        assert self.sio is not None
        return await self.sio.call("ai-query", text, timeout=10)

    async def next_response(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def close(self) -> None:
        """Disconnect, close the HTTP session, and wait until the WebSocket's socket is really closed.

        Closing the WebSocket closes its TLS connection gracefully: asyncio sends close_notify and closes the socket
        once the server's comes back (or after 30 s). A test whose event loop ended before that left the socket to the
        garbage collector, and its ResourceWarning failed whatever test ran then (once seen with the Swarm master)."""
        if self.sio is None:
            return
        http = self.sio.eio.http
        ws = getattr(self.sio.eio, "ws", None)
        sock = ws.get_extra_info("socket") if ws is not None and not ws.closed else None
        try:
            await self.sio.disconnect()
        finally:
            if http is not None:
                await http.close()
        if sock is not None:
            await wait_until(lambda: sock.fileno() == -1, timeout=35, what="the WebSocket's socket to close")


@contextlib.asynccontextmanager
async def chat_client(pki: Pki, url: str, origin: str | None = None, cookie: str | None = None) -> AsyncIterator[ChatClient]:
    client = ChatClient(pki, origin, cookie)
    await client.connect(url)
    try:
        yield client
    finally:
        await client.close()
