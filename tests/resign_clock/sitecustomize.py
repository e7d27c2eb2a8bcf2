"""Test-only clock for a dynmx server started with this folder on PYTHONPATH: its daily
re-sign waits for the file named by DYNMX_TEST_RESIGN_TRIGGER instead of the next UTC
midnight, and each re-sign moves the signer one day on, as a real midnight would."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

TRIGGER = os.environ.get("DYNMX_TEST_RESIGN_TRIGGER")

if TRIGGER:
    import dynmx.app.lifecycle as app
    import dynmx.policy.signing as signing
    from dynmx.zone import signer

    days = [0]
    daily = getattr(app, "resign_daily")  # noqa: B009

    async def _sleep_until_triggered(seconds: float) -> None:
        trigger = Path(str(TRIGGER))
        for _ in range(20 * 600):  # the test stops the server well within ten minutes
            if trigger.exists():
                trigger.unlink()
                days[0] += 1
                return
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)

    def _window(now: float | None = None) -> signer.Window:
        return signer.window((time.time() if now is None else now) + days[0] * signer.DAY)

    def _resign_daily(signed: Any, republish: Any) -> Any:
        return daily(signed, republish, sleep=_sleep_until_triggered)

    setattr(signing, "window", _window)  # noqa: B010 - replaced for this test process only
    setattr(app, "resign_daily", _resign_daily)  # noqa: B010
