"""Per-provider caps held across the whole cluster: one named actor hands out leased slots.

In-process, a council's `Limited` wrappers share a `ProviderLimiter` (models/retry.py) — a
semaphore per provider in one event loop. On Ray the calls of one run come from many worker
processes on many machines, so the semaphores move into one async actor per run
(`manyminds-slots-RUNID`), and each worker's council gets a `ClusterLimiter` in their place: the
same `slot(provider, limit)` call, now an `acquire` / `release` round trip to the actor.

Why an actor and not Ray resources: a resource is claimed per task, and a task (one eval pair,
one batch line) makes many calls — to several providers, members and chair — at different
moments; resources are declared per node when it starts, so a cap "8 calls to openai" cannot be
split across nodes or changed per run. The actor caps calls, not tasks, exactly like the
in-process limiter, for any number of workers.

A slot is a lease: a worker killed while it holds one (kill -9, a node lost) never releases it.
Each lease names its holder (node and pid): one held by a dead process on the actor's own node
is freed at once; any other expires after `lease_s` — longer than one attempt may take (the
council's timeout bounds each member's calls). The `local` provider keeps its per-process limiter: every worker
runs its own llama.cpp server, so there is nothing shared to cap.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from ..models.retry import ProviderLimiter

PER_PROCESS = frozenset({"local"})  # providers whose server is per worker process


class ProviderSlots:
    """The actor's class (made remote by `slots_actor`): counting semaphores per provider with
    leases. `peak` keeps the most slots ever held at once per provider (tests read it)."""

    def __init__(self, lease_s: float = 900.0) -> None:
        self.lease_s = lease_s
        self.limits: dict[str, int] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.holders: dict[str, tuple[str, int]] = {}  # lease → (node id, pid)
        self.node: str | None = None
        self.peak: dict[str, int] = {}
        # Leases released before they were granted (the asker was cancelled while it waited):
        # never granted, so a cancelled wait cannot leave a slot held until its lease expires
        self.withdrawn: dict[str, float] = {}
        self._changed: asyncio.Condition | None = None

    def _held(self, provider: str) -> int:
        return sum(1 for p, _ in self.leases.values() if p == provider)

    def _reap(self) -> None:
        now = time.monotonic()
        for lease, (_, expires) in list(self.leases.items()):
            node, pid = self.holders.get(lease, ("", 0))
            if expires < now or (pid and node == self.node and not _alive(pid)):
                del self.leases[lease]
                self.holders.pop(lease, None)
        for lease, expires in list(self.withdrawn.items()):
            if expires < now:
                del self.withdrawn[lease]

    async def acquire(self, provider: str, limit: int, holder: tuple[str, int] | None = None,
                      lease: str | None = None) -> str:  # fmt: skip
        """Wait for one of `provider`'s slots (the first limit given holds, as in-process).
        `lease` is the asker's name for it, so it can withdraw a wait it gave up on."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        lease = lease or uuid.uuid4().hex
        async with self._changed:
            cap = self.limits.setdefault(provider, max(1, int(limit)))
            while True:
                self._reap()
                if self.withdrawn.pop(lease, None) is not None:
                    return lease  # released while waiting: nothing is held
                if self._held(provider) < cap:
                    break
                try:  # woken by a release, or every second to reap expired leases
                    await asyncio.wait_for(self._changed.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
            self.leases[lease] = (provider, time.monotonic() + self.lease_s)
            if holder is not None:
                self.holders[lease] = holder
            self.peak[provider] = max(self.peak.get(provider, 0), self._held(provider))
            return lease

    async def release(self, lease: str) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            if self.leases.pop(lease, None) is None:  # not granted yet (or expired): never grant it
                self.withdrawn[lease] = time.monotonic() + self.lease_s
            self.holders.pop(lease, None)
            self._changed.notify_all()

    async def set_node(self) -> None:
        self.node = _here()[0]

    async def stats(self) -> dict[str, Any]:
        held: dict[str, int] = {}
        for provider, _ in self.leases.values():
            held[provider] = held.get(provider, 0) + 1
        return {"limits": dict(self.limits), "held": held, "peak": dict(self.peak)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _here() -> tuple[str, int]:
    """(node id, pid) of this process, as a lease's holder."""
    import ray

    return ray.get_runtime_context().get_node_id(), os.getpid()


def slots_actor(ray: Any, name: str, lease_s: float) -> Any:
    """The run's slot actor, created by the driver (so it lives as long as the driver does).
    Many concurrent `acquire`s wait inside it at once: an async actor with room for them."""
    remote = ray.remote(num_cpus=0, max_concurrency=10_000)(ProviderSlots)
    actor = remote.options(name=name, get_if_exists=True).remote(lease_s)
    ray.get(actor.set_node.remote())
    return actor


class ClusterLimiter(ProviderLimiter):
    """A `ProviderLimiter` whose slots are the actor's. `cap` (eval's `--per-provider`) lowers
    every provider's limit."""

    def __init__(self, actor: Any, cap: int | None = None) -> None:
        super().__init__()
        self.actor, self.cap = actor, cap
        self.holder = _here()
        self.broken: BaseException | None = None  # set when the actor failed: the task must fail, not store

    @asynccontextmanager
    async def slot(self, provider: str, limit: int) -> AsyncIterator[None]:
        limit = min(limit, self.cap) if self.cap else limit
        if provider in PER_PROCESS:
            async with super().slot(provider, limit):
                yield
            return
        lease = uuid.uuid4().hex
        try:
            await self.actor.acquire.remote(provider, limit, self.holder, lease)
        except asyncio.CancelledError:
            # Cancelled while waiting (early consensus, a member's timeout): the actor may grant
            # the slot after we stopped listening, so withdraw it by name either way.
            self.actor.release.remote(lease)
            raise
        except Exception as exc:  # the actor is gone (its node lost, its driver dead): not the model's fault
            self.broken = exc
            raise
        try:
            yield
        finally:
            self.actor.release.remote(lease)  # not awaited: the slot is free once the actor hears it
