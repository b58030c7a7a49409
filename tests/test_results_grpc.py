"""The master's gRPC ResultService refuses every result that is not a worker's answer to its own task.

Every test runs over both calls: unary SubmitResult (a refusal is the call's status) and the
StreamResults stream that workers use (a certificate refusal ends the stream with that status;
a result refusal is an Ack naming the same status, and the stream stays open).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from devstack.local_broker import RunningBroker
from common.rpc import worker_pb2, worker_pb2_grpc
from common.tls import TlsFiles, grpc_channel_credentials
from master.dispatcher import Task
from pki.authority import Role, issue_leaf
from pki.store import load_issued, write_issued
from tests.conftest import Pki
from tests.stack_helpers import ChatClient, Stack, chat_client, local_stack, wait_until

pytestmark = pytest.mark.integration


@dataclass
class Pending:
    """A question held by a slow worker: the task, the stack, the asking browser session and our PKI."""

    stack: Stack
    client: ChatClient
    task: Task
    pki: Pki


@pytest.fixture
async def pending(pki: Pki, broker: RunningBroker) -> AsyncIterator[Pending]:
    """A task assigned to a worker that will not answer it during the test, and the browser that asked."""
    async with local_stack(
        pki, broker, workers=2, capacity=1, worker_overrides={"echo_latency_s": 60, "drain_timeout_s": 0.1}
    ) as stack:
        async with chat_client(pki, stack.url, cookie=stack.cookie) as client:
            ack = await client.ask("who may answer this?")
            d = stack.master.dispatcher
            await wait_until(lambda: d.tasks[ack["task_id"]].worker_id is not None, what="assignment")
            yield Pending(stack, client, d.tasks[ack["task_id"]], pki)


def channel(port: int, creds: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """A channel to the master's gRPC port: plaintext when `creds` is None."""
    target = f"127.0.0.1:{port}"
    if creds is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "localhost")])


@pytest.fixture(params=["unary", "stream"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each test runs over the unary call and over the stream."""
    return str(request.param)


async def outcome(port: int, creds: grpc.ChannelCredentials | None, result: worker_pb2.TaskResult, transport: str) -> str:
    """"OK" when accepted, else the status name the master answered with (call status or Ack refusal)."""
    async with channel(port, creds) as ch:
        stub = worker_pb2_grpc.ResultServiceStub(ch)
        try:
            if transport == "unary":
                ack = await stub.SubmitResult(result, timeout=5)
            else:
                call = stub.StreamResults(timeout=5)
                await call.write(result)
                ack = await call.read()
                await call.done_writing()
                if ack is grpc.aio.EOF:
                    return (await call.code()).name
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    assert ack.task_id == result.task_id
    return "OK" if ack.accepted else ack.refusal


def forged(task: Task, **changes: str) -> worker_pb2.TaskResult:
    """A result for `task` with its assigned worker id and token, answer "FORGED", then `changes`."""
    fields = {"task_id": task.task_id, "worker_id": task.worker_id or "", "token": task.token, "answer": "FORGED"}
    fields.update(changes)
    return worker_pb2.TaskResult(**fields)


async def assert_refused(
    p: Pending, creds: grpc.ChannelCredentials | None, result: worker_pb2.TaskResult, code: grpc.StatusCode,
    transport: str,
) -> None:
    """The call is refused with `code`; then the assigned worker's own answer (the sentinel) is the first
    and only thing the browser receives: a refused result that had got through would be ahead of it."""
    port = p.stack.master.grpc_port
    assert await outcome(port, creds, result, transport) == code.name
    assert p.task.task_id in p.stack.master.dispatcher.tasks, "a refused result settled the task"
    assert await outcome(port, creds_for(p.pki, "worker"), forged(p.task, answer="SENTINEL"), transport) == "OK"
    response = await p.client.next_response()
    assert (response["task_id"], response["answer"]) == (p.task.task_id, "SENTINEL"), "a refused result reached the browser"
    assert p.client.responses.empty(), "more than the sentinel reached the browser"


def creds_for(pki: Pki, role: str | None) -> grpc.ChannelCredentials:
    """Channel credentials trusting our CA, presenting `role`'s certificate (none when `role` is None)."""
    files = TlsFiles(ca=pki.ca) if role is None else pki.tls(role)
    return grpc_channel_credentials(files)


async def test_right_certificate_and_token_is_accepted(pending: Pending, pki: Pki, transport: str) -> None:
    """Control: a worker certificate with the assigned worker id and token settles the task for the browser."""
    port = pending.stack.master.grpc_port
    assert await outcome(port, creds_for(pki, "worker"), forged(pending.task), transport) == "OK"
    response = await pending.client.next_response()
    assert response["task_id"] == pending.task.task_id and response["answer"] == "FORGED"


async def test_plaintext_channel_is_unavailable(pending: Pending, transport: str) -> None:
    """No TLS at all: the handshake fails, UNAVAILABLE."""
    await assert_refused(pending, None, forged(pending.task), grpc.StatusCode.UNAVAILABLE, transport)


async def test_tls_without_client_certificate_is_unavailable(pending: Pending, pki: Pki, transport: str) -> None:
    """TLS that trusts our CA but presents no client certificate: UNAVAILABLE (mutual TLS required)."""
    await assert_refused(pending, creds_for(pki, None), forged(pending.task), grpc.StatusCode.UNAVAILABLE, transport)


async def test_client_certificate_from_another_ca_is_unavailable(
    pending: Pending, pki: Pki, other_pki: Pki, transport: str
) -> None:
    """A worker certificate from a foreign CA (trusting our server): UNAVAILABLE."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=other_pki.key("worker").read_bytes(),
        certificate_chain=other_pki.cert("worker").read_bytes(),
    )
    await assert_refused(pending, creds, forged(pending.task), grpc.StatusCode.UNAVAILABLE, transport)


@pytest.mark.parametrize("role", ["master", "mosquitto"])
async def test_server_certificate_used_as_client_is_refused_in_the_handshake(
    pending: Pending, pki: Pki, role: str, capfd: pytest.CaptureFixture[str], transport: str
) -> None:
    """The master's or mosquitto's certificate (serverAuth only) as a client: the TLS layer refuses it, UNAVAILABLE."""
    await assert_refused(pending, creds_for(pki, role), forged(pending.task), grpc.StatusCode.UNAVAILABLE, transport)
    assert "unsupported certificate purpose" in capfd.readouterr().err  # gRPC core's own handshake log


async def test_client_certificate_of_our_ca_without_worker_role_is_permission_denied(
    pending: Pending, pki: Pki, tmp_path: Path, transport: str
) -> None:
    """A clientAuth certificate from our own CA but for another role: PERMISSION_DENIED, even with the token."""
    ca = load_issued(pki.out, "ca")
    intruder = issue_leaf(ca, Role("intruder", server=False, default_sans=()))
    write_issued(tmp_path, "intruder", intruder)
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=(tmp_path / "intruder.key").read_bytes(),
        certificate_chain=(tmp_path / "intruder.crt").read_bytes(),
    )
    await assert_refused(pending, creds, forged(pending.task), grpc.StatusCode.PERMISSION_DENIED, transport)


async def test_wrong_token_is_permission_denied(pending: Pending, pki: Pki, transport: str) -> None:
    """The assigned worker's id with a wrong token: PERMISSION_DENIED, the browser gets nothing."""
    result = forged(pending.task, token=pending.task.token[:-1] + ("A" if pending.task.token[-1] != "A" else "B"))
    await assert_refused(pending, creds_for(pki, "worker"), result, grpc.StatusCode.PERMISSION_DENIED, transport)


async def test_result_for_task_of_another_worker_is_permission_denied(pending: Pending, pki: Pki, transport: str) -> None:
    """The other worker, even holding the token, cannot answer a task assigned elsewhere."""
    other = next(w.settings.worker_id for w in pending.stack.workers if w.settings.worker_id != pending.task.worker_id)
    result = forged(pending.task, worker_id=other)
    await assert_refused(pending, creds_for(pki, "worker"), result, grpc.StatusCode.PERMISSION_DENIED, transport)


async def test_unknown_task_is_not_found(pending: Pending, pki: Pki, transport: str) -> None:
    """A result for a task that is not waiting: NOT_FOUND."""
    result = forged(pending.task, task_id="0" * 32)
    await assert_refused(pending, creds_for(pki, "worker"), result, grpc.StatusCode.NOT_FOUND, transport)
