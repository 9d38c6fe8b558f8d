"""The Kentik device of each IBM subnet (`ibm_<subnet id>`), resolved once per process and cached.

A device is found or created in the configured plan and export; its 19 custom column ids (STR00..STR18)
must all exist — a device without them is a Kentik configuration problem: the sink waits (unhealthy, with
the cause) and looks again, it never sends flows with made-up column ids.
"""
from __future__ import annotations

import asyncio

from connectors.kentik import Device, KentikError
from streams.retry import Transient


class Devices:
    def __init__(self):
        self._devices: dict[str, tuple[Device, list[int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def cached(self, name: str) -> tuple[Device, list[int]] | None:
        """The device and its field ids if already resolved (no I/O; safe from the thread pool)."""
        return self._devices.get(name)

    async def get(self, ctx, name: str, region: str, zone: str, subnet_id: str) -> tuple[Device, list[int]]:
        """(device, custom field ids in STR00..STR18 order) for device `name`; retried until Kentik answers."""
        found = self._devices.get(name)
        if found is not None:
            return found
        async with self._locks.setdefault(name, asyncio.Lock()):
            if name not in self._devices:
                self._devices[name] = await ctx.retry(
                    f"resolving Kentik device {name}", "sink: device", _resolve, ctx, name, region, zone, subnet_id)
            return self._devices[name]


def _resolve(ctx, name: str, region: str, zone: str, subnet_id: str) -> tuple[Device, list[int]]:
    s = ctx.settings
    try:
        device = ctx.rt.kentik.resolve_device(name, plan_id=s.plan_id, export_id=s.export_id, region=region,
                                              zone=zone, description=f"IBM VPC subnet {subnet_id} (blueflow)")
        return device, device.custom_field_ids()
    except KentikError as exc:
        if exc.status in (401, 403):
            ctx.health.fatal = (f"Kentik rejected the credentials (HTTP {exc.status}) while resolving device "
                                f"{name}; fix KENTIK_API_TOKEN / --api_email and restart")
        raise Transient(str(exc)) from None
