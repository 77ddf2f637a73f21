"""A client's mistakes get an error_message with the right code, and never cost the user the
connection: the next message on the same socket still completes its run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from goldenpath.client.auth import Tokens
from goldenpath.core.errors import ConnectionLost
from goldenpath.protocol.contract import Contract

from .helpers import Harness, Scenario

pytestmark = [pytest.mark.websocket, pytest.mark.golden_path]


def _user_message(contract: Contract, payload: dict[str, object]) -> str:
    return json.dumps(
        {"type": contract.user_message, "payload": {"message_id": str(uuid.uuid4()), **payload}}
    )


# what the client sends wrong -> (the frame, the error_code the protocol answers it with)
MISTAKES: dict[str, tuple[Callable[[Contract], str], str]] = {
    "malformed JSON": (lambda c: '{"type": "' + c.user_message + '", "payload": {', "JSON_PARSE_ERROR"),
    "a message of an unknown type": (
        lambda c: json.dumps({"type": "goldenpath_no_such_type", "payload": {}}),
        "UNKNOWN_MESSAGE_TYPE",
    ),
    "JSON that is not an object": (lambda c: json.dumps([c.user_message]), "UNKNOWN_MESSAGE_TYPE"),
    "a user_message with empty text": (
        lambda c: _user_message(c, {"text": "", "thread_id": None}),
        "VALIDATION_ERROR",
    ),
    "a user_message without text": (lambda c: _user_message(c, {"thread_id": None}), "VALIDATION_ERROR"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_client_mistake_gets_its_error_code_and_the_connection_stays_usable(
    scenario: Scenario, account: Tokens, mistake: str
) -> None:
    make_frame, code = MISTAKES[mistake]

    async def body(h: Harness) -> None:
        async with h.connected(account) as connection:
            await connection.send_raw(make_frame(h.gp.contract))
            try:
                error = await connection.next_error(timeout_s=h.first_answer_s)
            except ConnectionLost as exc:
                raise AssertionError(
                    f"the server closed the connection after {mistake} instead of answering {code}: {exc}"
                ) from None
            frame = error.frame
            assert frame.get("error_code") == code, (
                f"{mistake} got error_code {frame.get('error_code')!r}, expected {code}: {frame}"
            )
            assert frame.get("error_message"), f"the {code} error_message has no error_message text"
            await h.complete(connection, f"Still there after {mistake}?")

    scenario(body)
