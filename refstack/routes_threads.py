"""Thread history over REST: GET /api/threads and GET /api/threads/{thread_id}/messages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from refstack.app_state import services_of
from refstack.services import Services
from refstack.tokens import TokenError
from refstack.web import ApiError, bearer_token


async def list_threads(request: Request) -> Response:
    services = services_of(request)
    user_id = rest_user(services, request)
    threads = await services.store.list_threads(user_id)
    return JSONResponse({"threads": [t.as_json() for t in threads]})


async def thread_messages(request: Request) -> Response:
    services = services_of(request)
    user_id = rest_user(services, request)
    thread_id = request.path_params["thread_id"]
    owner = None if services.settings.faults.idor else user_id
    messages = await services.store.thread_messages(thread_id, owner)
    if messages is None:
        # Never 403: another user's thread and a missing one must look the same.
        raise ApiError(404, "not_found", "thread not found")
    return JSONResponse({"thread_id": thread_id, "messages": [m.as_json() for m in messages]})


def rest_user(services: Services, request: Request) -> str:
    """The caller's user id from `Authorization: Bearer <access token>`, else 401."""
    token = bearer_token(request)
    challenge = {"WWW-Authenticate": "Bearer"}
    if token is None:
        raise ApiError(401, "missing_token", "Authorization: Bearer <token> required", headers=challenge)
    try:
        claims = services.tokens.decode_access(token)
    except TokenError as exc:
        raise ApiError(401, "invalid_token", str(exc), headers=challenge) from None
    return claims.user_id
