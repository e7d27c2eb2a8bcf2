"""A self-check round as metric samples: selfcheck knows its reports, metrics knows the names."""

from __future__ import annotations

from dynmx.metrics import SelfCheckSamples
from dynmx.selfcheck.decide import Action
from dynmx.selfcheck.registrar import PushReport
from dynmx.selfcheck.round import RoundReport


def selfcheck_samples(report: RoundReport, pushes: list[PushReport]) -> SelfCheckSamples:
    """Every action per own name and family (1 for the one decided, 0 for the others), the repairs
    made and the outcome of each push sent."""
    samples = SelfCheckSamples(report.finished)
    for name in report.names:
        for family, decision in name.decisions.items():
            for action in Action:
                value = 1 if decision.action is action else 0
                samples.actions.append((name.name, str(family), action.value, value))
        samples.repairs.extend((name.name, str(family)) for family in name.repaired)
    for push in pushes:
        if push.sent and push.result is not None:
            samples.pushes.append((push.adapter, push.result.outcome.value))
    return samples
