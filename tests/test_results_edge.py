"""master/results.py as the dispatcher's gRPC edge: wire results in, refusals out as status codes."""

from __future__ import annotations

import grpc

from common.rpc import worker_pb2
from master.dispatcher import Refusal, WorkerResult
from master.results import REFUSAL_STATUS, result_from_message


def test_every_refusal_has_a_grpc_status() -> None:
    """Each reason the dispatcher can refuse with maps to a status; unknown tasks are NOT_FOUND, the rest denied."""
    assert set(REFUSAL_STATUS) == set(Refusal)
    assert REFUSAL_STATUS[Refusal.UNKNOWN_TASK] is grpc.StatusCode.NOT_FOUND
    assert REFUSAL_STATUS[Refusal.NOT_ASSIGNED] is grpc.StatusCode.PERMISSION_DENIED
    assert REFUSAL_STATUS[Refusal.WRONG_TOKEN] is grpc.StatusCode.PERMISSION_DENIED


def test_answer_message_becomes_an_answer_result() -> None:
    """An answer on the wire is an answer for the dispatcher, with the ids, token and model kept."""
    message = worker_pb2.TaskResult(task_id="t1", worker_id="w1", token="k" * 32, model="echo", answer="")
    assert result_from_message(message) == WorkerResult("t1", "w1", "k" * 32, "echo", answer="")


def test_error_message_becomes_an_error_result() -> None:
    """An error on the wire has no answer for the dispatcher, only its code and message."""
    message = worker_pb2.TaskResult(task_id="t1", worker_id="w1", token="k" * 32, model="echo")
    message.error.code, message.error.message = "rate_limited", "Try again"
    result = result_from_message(message)
    assert (result.answer, result.error_code, result.error_message) == (None, "rate_limited", "Try again")
