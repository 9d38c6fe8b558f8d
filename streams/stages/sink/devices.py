"""The Kentik device of each IBM subnet (`ibm_<subnet id>`), resolved once per process and cached.

A device is found or created in the configured plan (and IBM cloud export when `--export_id` is set; without
one by plan only), of type `--kentik_device_type` / `--kentik_device_subtype`; its 19 custom column ids (STR00..STR18)
must all exist — a device without them is a Kentik configuration problem: the sink waits (unhealthy, with
the cause) and looks again, it never sends flows with made-up column ids.
"""
from __future__ import annotations

import asyncio

from connectors.kentik import Device, KentikError
from streams.observe.health import Cause
from streams.stages.retry import Transient


class Devices:
    def __init__(self):
        self._devices: dict[str, tuple[Device, list[int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._devices)

    def cached(self, name: str, source) -> tuple[Device, list[int]] | None:
        """The device of `source`'s Kentik account and its field ids if already resolved (no I/O; safe from the
        thread pool)."""
        return self._devices.get((source.name, name))

    async def get(self, ctx, name: str, region: str, zone: str, subnet_id: str,
                  source) -> tuple[Device, list[int]]:
        """(device, custom field ids in STR00..STR18 order) for device `name` in the Kentik account, plan and
        export of `source`; retried until Kentik answers."""
        cache_key = (source.name, name)  # the same subnet name may exist in two Kentik accounts
        found = self._devices.get(cache_key)
        if found is not None:
            return found
        async with self._locks.setdefault(cache_key, asyncio.Lock()):
            if cache_key not in self._devices:
                self._devices[cache_key] = await ctx.source_retry(
                    source, "kentik", f"resolving Kentik device {name}", "sink: device", _resolve, ctx, source, name,
                    region, zone, subnet_id)
            return self._devices[cache_key]


def _resolve(ctx, source, name: str, region: str, zone: str, subnet_id: str) -> tuple[Device, list[int]]:
    s = ctx.settings
    try:
        device = ctx.rt.kentik_client(source).resolve_device(name, plan_id=source.plan_id, export_id=source.export_id,
                                                          region=region,
                                              zone=zone, description=f"IBM VPC subnet {subnet_id} (blueflow)",
                                              device_type=s.kentik_device_type,
                                              device_subtype=s.kentik_device_subtype)
        return device, device.custom_field_ids()
    except KentikError as exc:
        if exc.status in (401, 403):
            cause = Cause("kentik", "credentials", f"Kentik rejected the credentials (HTTP {exc.status}) while "
                          f"resolving device {name}; fix KENTIK_API_TOKEN / --api_email and restart", "kentik")
            ctx.failures.failed(source, "kentik", cause.message, cause)
        raise Transient(str(exc)) from None
