"""The operator's promotion hooks: a command, a webhook, or both, once per promotion.

Run off the monitor's path as tasks (bounded by `HOOK_TIMEOUT`), so a slow hook never
delays a verdict or a plan.
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

from dynmx.config import PoolConfig

log = logging.getLogger("dynmx.health")  # the monitor's logger: hook lines read as its own

HOOK_TIMEOUT = 30.0


class PromotionHooks:
    """The promotion hooks of `HealthMonitor`, its base; it sets `hook_tasks`."""

    hook_tasks: set[asyncio.Task[None]]

    def _on_promotion(self, config: PoolConfig, event: str) -> None:
        standbys = [m.host for m in config.member if m.role == "standby"]
        log.warning("event=pool-%s pool=%s standbys=%s", event, config.name, ",".join(standbys))
        if event != "promote" or not (config.on_promote or config.on_promote_url):
            return
        try:
            task = asyncio.get_running_loop().create_task(self._run_hook(config, standbys))
        except RuntimeError:  # no loop (a unit test driving evaluate by hand)
            return
        self.hook_tasks.add(task)
        task.add_done_callback(self.hook_tasks.discard)

    async def _run_hook(self, config: PoolConfig, standbys: list[str]) -> None:
        """Run the operator's hook once per promotion: a command, a webhook, or both."""
        if config.on_promote:
            env = {**os.environ, "DYNMX_POOL": config.name, "DYNMX_STANDBYS": " ".join(standbys)}
            try:
                process = await asyncio.create_subprocess_exec(*config.on_promote, env=env)
                code = await asyncio.wait_for(process.wait(), HOOK_TIMEOUT)
                log.info("event=promote-hook kind=command pool=%s exit=%d", config.name, code)
            except (OSError, TimeoutError) as error:
                log.error("event=promote-hook kind=command pool=%s error=%r", config.name, str(error))
        if config.on_promote_url:
            body = {"event": "promote", "pool": config.name, "standbys": standbys}
            try:
                async with httpx.AsyncClient(timeout=HOOK_TIMEOUT) as client:
                    response = await client.post(config.on_promote_url, json=body)
                log.info(
                    "event=promote-hook kind=webhook pool=%s status=%d", config.name, response.status_code
                )
            except httpx.HTTPError as error:
                log.error(
                    "event=promote-hook kind=webhook pool=%s error=%r", config.name, type(error).__name__
                )
