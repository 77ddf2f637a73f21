"""The deterministic agent: the golden-path event sequence for each user message.

agent_started, then for each tool step an agent_thinking followed by the pair
tool_executing / tool_completed (matched by tool_name), then agent_completed whose
data.result contains the user's text. The number of tool steps is REFSTACK_AGENT_TOOLS
(default 1); a message containing "multi-step" gets at least 3.

Each event is serialized once, delivered, and recorded for analytics (a list append);
nothing else happens per event. Only the final answer is written to the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from refstack.analytics import Analytics
from refstack.faults import LATENCY_CREEP_CAP_MS, Faults
from refstack.hub import Hub, Route
from refstack.store import Message, Store, StoreUnavailable
from refstack.variants import Variants

log = logging.getLogger("refstack.agent")

AGENT_NAME = "refstack-agent"
GOLDEN_PATH_EVENTS = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)
TOOL_NAMES = ("search_knowledge_base", "analyze_data", "summarize_findings")
MULTI_STEP_TRIGGER = "multi-step"
MULTI_STEP_TOOLS = 3

# Fault memory_leak: grows with every run and is never freed, on purpose.
LEAKED: list[bytes] = []
# Fault memory_creep: grows with every completed run and is never freed, on purpose.
CREPT: list[bytearray] = []

# Faults error_result and blank_result: what agent_completed carries instead of the answer.
ERROR_RESULT: dict[str, Any] = {"status": "error", "error": "tool failed"}
BLANK_RESULT = "   "

# A frame as sent (its JSON text) and as built (for the leak_rewrite fault).
Frame = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Run:
    run_id: str
    thread_id: str
    user_id: str
    message_id: str
    text: str
    received: float  # time.monotonic() when the user_message arrived
    origin: str | None = None  # connection_id of the socket the user_message came from


@dataclass
class _Live:
    """One run in flight: where its events go, and (fault stale_replay) what was sent."""

    run: Run
    route: Route
    frames: list[Frame] | None = None


def tool_plan(text: str, configured: int) -> list[str]:
    """Tool names for one run: distinct names, so pairs match unambiguously."""
    count = configured
    if MULTI_STEP_TRIGGER in text.lower():
        count = max(count, MULTI_STEP_TOOLS)
    names = []
    for index in range(count):
        base = TOOL_NAMES[index % len(TOOL_NAMES)]
        round_ = index // len(TOOL_NAMES)
        names.append(base if round_ == 0 else f"{base}_{round_ + 1}")
    return names


class Agent:
    def __init__(
        self,
        hub: Hub,
        store: Store,
        analytics: Analytics | None,
        faults: Faults,
        variants: Variants,
        tools: int,
        step_delay_ms: float,
    ) -> None:
        self._hub = hub
        self._store = store
        self._analytics = analytics
        self._faults = faults
        self._variants = variants
        self._tools = tools
        self._delay = step_delay_ms / 1000.0
        self._runs_served = 0  # fault latency_creep
        self._last_run: dict[str, list[Frame]] = {}  # fault stale_replay: user -> frames sent

    async def run(self, run: Run) -> None:
        live = _Live(run, self._hub.route(run.user_id, run.origin))
        try:
            previous = self._last_run.get(run.user_id) if self._faults.stale_replay else None
            if previous is not None:
                await self._replay(live, previous)
            else:
                await self._steps(live)
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            await self._emit(live, "agent_error", {"error_message": f"storage unavailable: {exc}"})
        except Exception as exc:
            log.exception("run %s failed", run.run_id)
            await self._emit(live, "agent_error", {"error_message": f"agent failed: {exc}"})

    async def fail(self, run: Run, message: str) -> None:
        """A run that cannot start (storage down): agent_error and nothing else."""
        live = _Live(run, self._hub.route(run.user_id, run.origin))
        await self._emit(live, "agent_error", {"error_message": message})

    async def _replay(self, live: _Live, frames: list[Frame]) -> None:
        """Fault stale_replay: the user's previous run again, frame for frame, as it was sent."""
        for text, event in frames:
            await self._pause()
            await self._hub.deliver(live.route, text, event)

    async def _steps(self, live: _Live) -> None:
        run = live.run
        faults = self._faults
        if faults.memory_leak_kb:
            LEAKED.append(b"\x01" * (faults.memory_leak_kb * 1024))
        if faults.stale_replay:
            live.frames = []
        if faults.latency_creep_ms:
            self._runs_served += 1
            creep_ms = min(self._runs_served * faults.latency_creep_ms, LATENCY_CREEP_CAP_MS)
            await asyncio.sleep(creep_ms / 1000)
        if faults.slow_first_event_ms:
            await asyncio.sleep(faults.slow_first_event_ms / 1000)

        preview = run.text[:200]
        tools = tool_plan(run.text, self._tools)
        await self._emit(live, "agent_started", {"status": "started", "user_request": preview})

        hold_next_thinking = faults.delay_event_ms is not None
        wrong_run_id_pending = faults.wrong_run_id
        slow_tool = (self._variants.slow_tool_ms or 0) / 1000
        for step, tool in enumerate(tools, start=1):
            await self._pause()
            hold = 0.0
            if hold_next_thinking:
                hold = (faults.delay_event_ms or 0) / 1000
                hold_next_thinking = False
            thought = f"Step {step} of {len(tools)}: using {tool}"
            await self._emit(live, "agent_thinking", {"thought": thought, "step": step}, hold=hold)

            await self._pause()
            started = time.monotonic()
            executing = {"tool_name": tool, "step": step, "parameters": {"query": preview}}
            other_run_id = None
            if wrong_run_id_pending:
                other_run_id = str(uuid.uuid4())
                wrong_run_id_pending = False
            if faults.reorder_tools:
                await self._completed(live, tool, step, started, other_run_id)
                await self._emit(live, "tool_executing", executing, tool_name=tool)
            else:
                await self._emit(live, "tool_executing", executing, tool_name=tool)
                await self._pause()
                if slow_tool:
                    # Variant slow_tool: the tool itself takes a while (healthy, within the SLA).
                    await asyncio.sleep(slow_tool)
                await self._completed(live, tool, step, started, other_run_id)

        if faults.never_complete:
            return

        await self._pause()
        answer = f"refstack reference answer after {len(tools)} tool step(s) to: {run.text}"
        await self._store.add_message(
            run.thread_id, Message("assistant", answer, str(uuid.uuid4()), run.run_id, time.time())
        )
        result: Any = answer
        if faults.error_result:
            result = dict(ERROR_RESULT)
        elif faults.blank_result:
            result = BLANK_RESULT
        completed = {
            "result": result,
            "status": "success",
            "tools_used": tools,
            "duration_ms": round((time.monotonic() - run.received) * 1000, 3),
        }
        await self._emit(live, "agent_completed", completed)
        if faults.duplicate_completed:
            await self._emit(live, "agent_completed", completed)
        if live.frames is not None:
            self._last_run[run.user_id] = live.frames
        if faults.memory_creep_kb:
            # bytearray repetition writes every byte, so the pages really count in RSS.
            CREPT.append(bytearray(b"\x01") * (faults.memory_creep_kb * 1024))
        if faults.late_event_ms is not None:
            # The injected defect itself: one more frame of the run after its agent_completed.
            await asyncio.sleep(faults.late_event_ms / 1000)
            late = {"thought": "one more thought after completing", "step": len(tools) + 1}
            await self._emit(live, "agent_thinking", late)

    async def _completed(self, live: _Live, tool: str, step: int, started: float, run_id: str | None) -> None:
        data = {
            "tool_name": tool,
            "step": step,
            "status": "success",
            "result": {"summary": f"{tool} processed {len(live.run.text)} characters", "items": step},
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        await self._emit(live, "tool_completed", data, tool_name=tool, run_id=run_id)

    async def _pause(self) -> None:
        if self._delay > 0:
            await asyncio.sleep(self._delay)

    async def _emit(
        self,
        live: _Live,
        event_type: str,
        data: dict[str, Any],
        *,
        tool_name: str | None = None,
        run_id: str | None = None,
        hold: float = 0.0,
    ) -> None:
        if event_type in self._faults.drop:
            return
        run = live.run
        variants = self._variants
        epoch = variants.now()
        event: dict[str, Any] = {
            "type": event_type,
            "run_id": run_id or run.run_id,
            "thread_id": run.thread_id,
            "user_id": run.user_id,
            "message_id": run.message_id,
            "agent_name": AGENT_NAME,
            "timestamp": variants.stamp(epoch),
            "data": data,
        }
        if tool_name is not None:
            event["tool_name"] = tool_name
        if variants.extra_fields:
            variants.decorate(event)
        text = json.dumps(event, separators=(",", ":"))
        if hold:
            # Fault delay_event: the timestamp above is already taken, so the client sees
            # a delivery latency of at least `hold`.
            await asyncio.sleep(hold)
        await self._hub.deliver(live.route, text, event)
        if live.frames is not None:
            live.frames.append((text, event))
        if self._analytics is not None:
            self._analytics.record(
                epoch,
                event_type,
                run.user_id,
                event["run_id"],
                run.thread_id,
                run.message_id,
                tool_name or "",
                (time.monotonic() - run.received) * 1000,
            )
