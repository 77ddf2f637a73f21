"""SLA compliance over N samples: connection time, first event, tool result, event delivery.

A second socket of the sampling user watches the whole time: the protocol delivers every run
to all of the user's sockets, so it sees each sample's run as a copy, and anything a run sends
after its agent_completed while later samples go on. Every socket is drained at its end."""

from __future__ import annotations

import pytest

from goldenpath.core.settings import Settings
from goldenpath.output.reports import LayerReport
from goldenpath.protocol.contract import Contract, Violation
from goldenpath.protocol.sla import SlaRecorder

from .support import StagingSession, run

pytestmark = [pytest.mark.sla, pytest.mark.websocket, pytest.mark.golden_path]

SAMPLES_SETTING = "GOLDENPATH_SLA_SAMPLES"
# Per sample: the upgrade, eight clock pings, one message, the close.
CALLS_PER_SAMPLE = 11


async def take_samples(settings: Settings, samples: int, recorder: SlaRecorder,
                       report: LayerReport) -> list[Violation]:  # fmt: skip
    violations: list[Violation] = []
    async with StagingSession(settings) as session:
        tokens = await session.new_user()
        watch = await session.connect(tokens)
        # One after another: concurrent samples would measure this client's own queueing.
        for index in range(samples):
            connection = await session.connect(tokens)
            recorder.add_connection_time(connection.connect_ns)
            report.add_connection_time(connection.connect_ns)
            clock = await connection.sync_clock()
            # The run's wait is its service-level deadline (Run.wait), not the per-call timeout.
            sample = await connection.ask(f"goldenpath staging SLA sample {index + 1} of {samples}")
            recorder.add_run(sample, clock)
            report.add_run(sample, clock)
            violations += await session.drained(connection)
        violations += await session.drained(watch)
    return violations


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
