"""SLA compliance over N samples: connection time, first event, tool result, event delivery.

Every socket of the sampling user stays open until the last sample is taken, and every frame
on each goes through the per-user ledger as it arrives: a watching socket sees each sample's
run as a copy, and a frame a run sends after its agent_completed lands on a socket still
listening. Every socket is drained at the end; no sleep stands in for that."""

from __future__ import annotations

import uuid

import pytest

from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Contract, Violation
from goldenpath.protocol.ledger import CanaryBook, UserLedger
from goldenpath.protocol.sla import SlaRecorder

from .support import StagingSession, run

pytestmark = [pytest.mark.sla, pytest.mark.websocket, pytest.mark.golden_path]

SAMPLES_SETTING = "GOLDENPATH_SLA_SAMPLES"
# Per sample: the upgrade, eight clock pings, one message, the close.
CALLS_PER_SAMPLE = 11


async def take_samples(settings: Settings, samples: int, recorder: SlaRecorder,
                       report: LayerReport) -> list[Violation]:  # fmt: skip
    async with StagingSession(settings) as session:
        tokens = await session.new_user()
        assert tokens.user_id, "the auth service's token pair names no user_id"
        # Every frame of every socket of the sampling user goes through the ledger as it
        # arrives: the run's contract, duplicates, frames after a run's end, foreign frames.
        ledger = UserLedger(tokens.user_id, CanaryBook(), session.client.contract)
        # A watching socket gets every run of its user as a copy.
        connections = [await session.connect(tokens, observers=[ledger.observer(0)])]
        # One after another: concurrent samples would measure this client's own queueing.
        for index in range(1, samples + 1):
            connection = await session.connect(tokens, observers=[ledger.observer(index)])
            connections.append(connection)
            recorder.add_connection_time(connection.connect_ns)
            report.add_connection_time(connection.connect_ns)
            clock = await connection.sync_clock()
            message_id = str(uuid.uuid4())
            ledger.sent(message_id, socket=index)
            # The run's wait is its service-level deadline (Run.wait), not the per-call timeout.
            sample = await connection.ask(f"{ledger.canary()} goldenpath staging SLA sample {index} of "
                                          f"{samples}", message_id=message_id)
            recorder.add_run(sample, clock)
            report.add_run(sample, clock)
        # Every socket listened until the last sample was taken, so a frame that a run sends
        # after its end lands on a socket still open; now each is drained to its close.
        for connection in connections:
            await connection.drain(settings.timeout_s)
        return [finding.violation() for finding in (*ledger.findings, *ledger.finish())]


def test_golden_path_meets_its_service_levels(gp_settings: Settings, gp_report: LayerReport) -> None:
    """Each sample is a fresh connection (ws_connect), a clock sync by pings, then one message
    (first_event, tool_result, and event_delivery corrected by the clock offset), gated at the
    profile's percentile and at the maximum."""
    samples = int(gp_settings.values[SAMPLES_SETTING])
    recorder = SlaRecorder(Contract.from_settings(gp_settings))
    violations = run(take_samples(gp_settings, samples, recorder, gp_report), gp_settings,
                     calls=CALLS_PER_SAMPLE * samples, runs=samples)  # fmt: skip
    gp_report.add_violations(violations)
    report = recorder.evaluate(gp_settings.sla)
    breached = ", ".join(result.metric for result in report.failures)
    assert report.passed, f"SLA breached ({breached}) over {samples} samples:\n" + "\n".join(report.lines())
    assert not violations, (f"{len(violations)} contract violation(s) in the SLA samples:\n"
                            + "\n".join(map(str, violations[:20])))  # fmt: skip
