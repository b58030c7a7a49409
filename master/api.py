"""The REST API under /api/v1: the same users, limits and tasks as the chat, for scripts.

Authentication: `Authorization: Bearer aisys_...` (a personal token) or the chat's session cookie;
with the cookie, a request that changes something also needs `X-CSRF-Token` (GET /session gives it).
Errors are JSON `{"error": {"code", "message"}}` with stable codes; another user's task id is 404.
The OpenAPI 3.1 document is generated from these routes (quart-schema) at /api/v1/openapi.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import Quart, Response, jsonify, request
from quart_schema import (
    OpenAPIProvider, QuartSchema, RequestSchemaValidationError, document_response, security_scheme, tag, validate_querystring,
    validate_request, validate_response,
)

from master.accounts import User
from master.api_tokens import create_token, list_tokens, revoke_token, user_for_token
from master.auth import Auth
from master.conversations import PAGE_LIMIT_MAX, Conversations, is_conversation_id
from master.dispatcher import Dispatcher
from master.intake import Intake, Refused
from master.model_feed import served_models
from master.sessions import COOKIE_NAME, same_secret
from master.store import Database
from master.task_journal import TaskJournal, user_task, user_tasks

API = "/api/v1"
REFUSAL_STATUS = {"rate_limited": 429, "too_many_open": 429, "daily_quota": 429, "busy": 503,
                  "priority_not_allowed": 403}
SECURITY = [{"bearer": []}, {"session": []}]


class Error(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: Error


class TaskIn(BaseModel):
    text: str = Field(min_length=1, description="The question")
    model: str = Field(default="", max_length=128, description="A model a live worker serves; empty: the default")
    priority: Literal["high", "normal", "low"] = Field(default="normal", description="high: admins only")


class TaskAccepted(BaseModel):
    task_id: str


class TaskError(BaseModel):
    code: str
    message: str


class TaskOut(BaseModel):
    task_id: str
    state: str = Field(description="queued, assigned, answered or failed")
    prompt: str
    model: str
    answer: str | None = None
    error: TaskError | None = None
    created_at: float
    finished_at: float | None = None
    cached: bool = Field(default=False, description="Answered from the response cache, not by a worker now")


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_before: float | None = Field(default=None, description="Pass as `before` for the next page")


class TaskQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    before: float | None = None


class ConversationOut(BaseModel):
    conversation_id: str
    title: str = Field(description="The first question, shortened")
    created_at: float
    updated_at: float = Field(description="When its latest question was asked")


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_before: float | None = Field(default=None, description="Pass as `before` for the next page")


class ConversationQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=PAGE_LIMIT_MAX)
    before: float | None = None


class WorkerOut(BaseModel):
    worker_id: str
    state: str
    capacity: int
    free_slots: int
    models: list[str]
    version: str
    backed_off: bool


class WorkersOut(BaseModel):
    workers: list[WorkerOut]


class ModelsOut(BaseModel):
    models: list[str] = Field(description="Models some live worker serves now: the values `model` may take")
    default: str = Field(description="What an empty `model` means (the master's DEFAULT_MODEL; empty: the worker's own)")


class StatsOut(BaseModel):
    queued: int
    open_tasks: int
    workers_live: int
    free_slots: int


class TokenIn(BaseModel):
    label: str = Field(min_length=1, max_length=64)


class TokenCreated(BaseModel):
    id: int
    label: str
    token: str = Field(description="Shown once: store it now")


class TokenOut(BaseModel):
    id: int
    label: str
    created_at: float
    last_used_at: float | None = None


class TokensOut(BaseModel):
    tokens: list[TokenOut]


class ApiOnly(OpenAPIProvider):
    """The OpenAPI document describes the REST API only, not the chat page, login or health routes."""

    def generate_rules(self):  # type: ignore[no-untyped-def]
        return (rule for rule in super().generate_rules() if rule.rule.startswith(API + "/"))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


@dataclass(frozen=True)
class Caller:
    user: User
    via_session_hash: str | None  # set when authenticated by the session cookie (CSRF applies)


def register_api(app: Quart, auth: Auth, db: Database, intake: Intake, dispatcher: Dispatcher,
                 journal: TaskJournal) -> None:
    QuartSchema(
        app, openapi_path=f"{API}/openapi.json", redoc_ui_path=None, scalar_ui_path=None, swagger_ui_path=None,
        info={"title": "ai-system", "version": "1"}, openapi_provider_class=ApiOnly,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"},
                          "session": {"type": "apiKey", "in_": "cookie", "name": COOKIE_NAME}},
    )

    async def caller(*, changes: bool = False, admin: bool = False) -> Caller:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            user = await db.run(user_for_token, header[7:].strip())
            if user is None:
                raise ApiError(401, "bad_token", "The API token is not valid (wrong, revoked, or its user is disabled).")
            found = Caller(user, None)
        else:
            session = await auth.session_for(request.cookies.get(COOKIE_NAME))
            if session is None:
                raise ApiError(401, "not_logged_in", "Send Authorization: Bearer <token>, or log in.")
            if changes and not same_secret(request.headers.get("X-CSRF-Token"), auth.signer.csrf_for(session.token_hash)):
                raise ApiError(403, "csrf", "With the session cookie, send X-CSRF-Token (from GET /session).")
            found = Caller(session.user, session.token_hash)
        if admin and not found.user.is_admin:
            raise ApiError(403, "admin_only", "This needs the admin role.")
        return found

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        response = jsonify({"error": {"code": exc.code, "message": exc.message}})
        response.status_code = exc.status
        if exc.retry_after_s:
            response.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
        return response

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid(exc: RequestSchemaValidationError) -> tuple[Any, int]:
        errors = getattr(exc.validation_error, "errors", lambda: [])()
        fields = [".".join(str(p) for p in e.get("loc", ())) for e in errors] or ["body"]
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in errors)
        return jsonify({"error": {"code": "invalid", "message": detail or "The request body is not valid JSON.",
                                  "fields": fields}}), 422

    @app.post(f"{API}/tasks")
    @tag(["tasks"])
    @security_scheme(SECURITY)
    @validate_request(TaskIn)
    @validate_response(TaskAccepted, 202)
    @document_response(ErrorBody, 403)
    @document_response(ErrorBody, 422)
    @document_response(ErrorBody, 429)
    async def post_task(data: TaskIn) -> tuple[TaskAccepted, int]:
        """Ask a question; the answer is fetched with GET /tasks/{task_id} (and pushed to the chat)."""
        who = await caller(changes=True)
        try:
            task = await intake.take(who.user, {"text": data.text, "model": data.model, "priority": data.priority})
        except Refused as refused:
            raise ApiError(REFUSAL_STATUS.get(refused.code, 422), refused.code, refused.message,
                           refused.retry_after_s) from None
        await intake.stored()  # 202 once the task is in the store
        return TaskAccepted(task_id=task.task_id), 202

    @app.get(f"{API}/tasks")
    @tag(["tasks"])
    @security_scheme(SECURITY)
    @validate_querystring(TaskQuery)
    @validate_response(TaskPage, 200)
    async def get_tasks(query_args: TaskQuery) -> TaskPage:
        """Your tasks, newest first, a page at a time."""
        who = await caller()
        await journal.flush()
        rows = await db.run(user_tasks, who.user.id, query_args.before, query_args.limit)
        next_before = rows[-1]["created_at"] if len(rows) == query_args.limit else None
        return TaskPage(tasks=[TaskOut(**r) for r in rows], next_before=next_before)

    @app.get(f"{API}/tasks/<task_id>")
    @tag(["tasks"])
    @security_scheme(SECURITY)
    @validate_response(TaskOut, 200)
    @document_response(ErrorBody, 404)
    async def get_task(task_id: str) -> TaskOut:
        """One of your tasks: its state, and its answer or error when finished."""
        who = await caller()
        await journal.flush()
        row = await db.run(user_task, who.user.id, task_id[:64])
        if row is None:
            raise ApiError(404, "not_found", "No such task.")
        return TaskOut(**row)

    @app.delete(f"{API}/tasks/<task_id>")
    @tag(["tasks"])
    @security_scheme(SECURITY)
    @document_response(ErrorBody, 404)
    async def delete_task(task_id: str) -> tuple[str, int]:
        """Stop one of your tasks that is still queued or running (it ends with the error `cancelled`)."""
        who = await caller(changes=True)
        task = dispatcher.tasks.get(task_id[:64])
        if task is None or task.user_id != who.user.id or not dispatcher.cancel_task(task.task_id):
            raise ApiError(404, "not_found", "No such open task.")
        return "", 204

    @app.get(f"{API}/models")
    @tag(["tasks"])
    @security_scheme(SECURITY)
    @validate_response(ModelsOut, 200)
    async def get_models() -> ModelsOut:
        """The models live workers serve now (a task naming another is refused with `unknown_model`)."""
        await caller()
        return ModelsOut(**served_models(dispatcher.registry, intake.settings.default_model))
    conversations = Conversations(db, dispatcher, journal, intake.cache)

    @app.get(f"{API}/conversations")
    @tag(["conversations"])
    @security_scheme(SECURITY)
    @validate_querystring(ConversationQuery)
    @validate_response(ConversationPage, 200)
    async def get_conversations(query_args: ConversationQuery) -> ConversationPage:
        """Your chat conversations, most recently used first, a page at a time."""
        who = await caller()
        rows = await conversations.listed(who.user.id, query_args.before, query_args.limit)
        next_before = rows[-1]["updated_at"] if len(rows) == query_args.limit else None
        return ConversationPage(conversations=[ConversationOut(**r) for r in rows], next_before=next_before)

    @app.delete(f"{API}/conversations/<conversation_id>")
    @tag(["conversations"])
    @security_scheme(SECURITY)
    @document_response(ErrorBody, 404)
    async def delete_conversation(conversation_id: str) -> tuple[str, int]:
        """Delete one of your conversations and its tasks (open ones are cancelled first)."""
        who = await caller(changes=True)
        if not is_conversation_id(conversation_id) or not await conversations.delete(who.user.id, conversation_id):
            raise ApiError(404, "not_found", "No such conversation.")
        return "", 204

    @app.get(f"{API}/workers")
    @tag(["admin"])
    @security_scheme(SECURITY)
    @validate_response(WorkersOut, 200)
    async def get_workers() -> WorkersOut:
        """Every worker the master knows (admin)."""
        await caller(admin=True)
        return WorkersOut(workers=[WorkerOut(**w) for w in dispatcher.registry.snapshot()])  # type: ignore[arg-type]

    @app.get(f"{API}/stats")
    @tag(["admin"])
    @security_scheme(SECURITY)
    @validate_response(StatsOut, 200)
    async def get_stats() -> StatsOut:
        """The queue and the workers now (admin)."""
        await caller(admin=True)
        registry = dispatcher.registry
        return StatsOut(queued=dispatcher.queued, open_tasks=len(dispatcher.tasks), workers_live=registry.live_count(),
                        free_slots=registry.total_free_slots())

    @app.post(f"{API}/tokens")
    @tag(["tokens"])
    @security_scheme(SECURITY)
    @validate_request(TokenIn)
    @validate_response(TokenCreated, 201)
    async def post_token(data: TokenIn) -> tuple[TokenCreated, int]:
        """Make a personal API token (shown once)."""
        who = await caller(changes=True)
        try:
            info, token = await db.run(create_token, who.user.id, data.label)
        except ValueError as exc:
            raise ApiError(409, "too_many_tokens", str(exc)) from None
        return TokenCreated(id=info.id, label=info.label, token=token), 201

    @app.get(f"{API}/tokens")
    @tag(["tokens"])
    @security_scheme(SECURITY)
    @validate_response(TokensOut, 200)
    async def get_tokens() -> TokensOut:
        """Your live tokens (never the tokens themselves)."""
        who = await caller()
        return TokensOut(tokens=[TokenOut(**vars(t)) for t in await db.run(list_tokens, who.user.id)])

    @app.delete(f"{API}/tokens/<int:token_id>")
    @tag(["tokens"])
    @security_scheme(SECURITY)
    @document_response(ErrorBody, 404)
    async def delete_token(token_id: int) -> tuple[str, int]:
        """Revoke one of your tokens."""
        who = await caller(changes=True)
        if not await db.run(revoke_token, who.user.id, token_id):
            raise ApiError(404, "not_found", "No such token.")
        return "", 204
