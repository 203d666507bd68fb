"""Backpressure: a concurrency limit per registry, and what the queue holds.

The limit is a counting semaphore in Redis (the broker's): one sorted set per
registry whose members are the leases of the scans pulling from it, scored by
when each lease expires. A worker that dies leaves its member behind, but the
member expires with the lease, so a slot is never lost for good. A task that
finds its registry full goes back to the queue with a countdown (see
scans.tasks) instead of holding a worker while it waits.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db.models import Count

from scans.choices import ScanState
from scans.models import Registry, ScanJob

log = logging.getLogger(__name__)

SLOTS_KEY = "vigil:registry-slots:{}"
# The broker queues whose backlog is shown (CELERY_TASK_ROUTES sends scans to `scans`).
QUEUES = ("scans", "default")
# kombu's Redis transport keeps one list per priority step: the queue's name for step 0,
# then name + "\x06\x16" + step for the others.
_PRIORITY_STEPS = (0, 3, 6, 9)
_PRIORITY_SEP = "\x06\x16"

# Drop expired leases, then take a slot if one is free (or this owner has one already).
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RegistryBusy(Exception):
    """The registry's concurrency limit is reached; the scan waits in the queue."""


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def redis_client() -> redis.Redis | None:
    """Redis of the broker, or None when Vigil runs without one (tasks in-process)."""
    url = settings.VIGIL_REDIS_URL
    return _client(url) if url else None


def registry_limit(registry: Registry) -> int:
    """How many scans may pull from `registry` at once; 0 is no limit."""
    limits: dict[str, int] = settings.VIGIL_REGISTRY_CONCURRENCY_OVERRIDES
    return int(limits.get(registry.name, settings.VIGIL_REGISTRY_CONCURRENCY))


@dataclass
class Slot:
    """One scan's place among its registry's concurrent scans."""

    key: str
    owner: str
    client: redis.Redis

    def renew(self) -> None:
        lease = settings.VIGIL_SCAN_LEASE_SECONDS
        self.client.zadd(self.key, {self.owner: time.time() + lease})
        self.client.expire(self.key, lease * 2)

    def release(self) -> None:
        self.client.zrem(self.key, self.owner)


def try_acquire(registry: Registry, owner: str) -> Slot | None:
    """A slot of `registry` for `owner`; raises RegistryBusy when all are taken, None when there is no limit."""
    client, limit = redis_client(), registry_limit(registry)
    if client is None or limit <= 0:
        return None
    key, lease, now = SLOTS_KEY.format(registry.pk), settings.VIGIL_SCAN_LEASE_SECONDS, time.time()
    try:
        taken = client.eval(_ACQUIRE, 1, key, now, now + lease, limit, owner, lease * 2)
    except redis.RedisError as exc:
        # The limit protects registries; Redis trouble must not stop scanning altogether.
        log.warning("registry %s: concurrency limit not applied (%s)", registry.name, exc)
        return None
    if not taken:
        raise RegistryBusy(f"registry {registry.name} already has {limit} scans running")
    return Slot(key, owner, client)


@contextmanager
def registry_slot(registry: Registry | None, owner: str) -> Iterator[Slot | None]:
    slot = try_acquire(registry, owner) if registry is not None else None
    try:
        yield slot
    finally:
        if slot is not None:
            try:
                slot.release()
            except redis.RedisError as exc:  # it expires with the lease anyway
                log.warning("could not release a slot of %s: %s", slot.key, exc)


def slots_in_use(registry: Registry) -> int | None:
    client = redis_client()
    if client is None:
        return None
    try:
        return int(client.zcount(SLOTS_KEY.format(registry.pk), time.time(), "+inf"))
    except redis.RedisError:
        return None


def broker_queue_lengths() -> dict[str, int] | None:
    """Messages waiting in each broker queue (LLEN over kombu's priority lists); None without Redis."""
    client = redis_client()
    if client is None:
        return None
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                for step in _PRIORITY_STEPS:
                    pipe.llen(queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}")
            lengths = pipe.execute()
    except redis.RedisError as exc:
        log.warning("cannot read the broker's queue lengths: %s", exc)
        return None
    per_queue = len(_PRIORITY_STEPS)
    return {queue: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(QUEUES)}


def queue_overview() -> dict[str, Any]:
    """Job counts by state, overall and per registry, with each registry's limit, and the broker's backlog."""
    states = [s.value for s in ScanState]
    totals = dict.fromkeys(states, 0)
    per_registry: dict[int | None, dict[str, int]] = {}
    rows = ScanJob.objects.values_list("repository__registry", "state").annotate(n=Count("id")).order_by()
    for registry_id, state, count in rows:
        per_registry.setdefault(registry_id, dict.fromkeys(states, 0))[state] = count
        totals[state] += count
    registries = []
    for registry in Registry.objects.order_by("name"):
        registries.append(
            {
                "registry": registry.name,
                "jobs": per_registry.pop(registry.pk, dict.fromkeys(states, 0)),
                "limit": registry_limit(registry),
                "running_slots": slots_in_use(registry),
            }
        )
    return {
        "jobs": totals,
        "registries": registries,
        # Uploaded SBOMs and jobs whose repository was deleted have no registry.
        "without_registry": per_registry.get(None, dict.fromkeys(states, 0)),
        "broker": broker_queue_lengths(),
    }
