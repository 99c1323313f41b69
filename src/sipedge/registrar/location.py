"""The registrar as a service: REGISTER handling and lookups over a :class:`LocationStore`.

:class:`Registrar` reads the AOR's bindings, runs the pure
:func:`~sipedge.registrar.service.apply_register` and writes the result back, all under a
per-AOR lock, so two REGISTERs for one AOR never interleave even with a store that
awaits (Redis). A lock exists only while someone holds or waits for it, and an
:class:`asyncio.Lock` only once someone had to wait (see :class:`_KeyedLocks`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..proxy.hooks import Target
from ..sip.errors import ParseError
from ..sip.hdr.nameaddr import parse_name_addr
from ..sip.message import Request
from ..sip.uri import URI, parse_uri
from ..transport.base import Flow
from .binding import Binding
from .service import RegisterOutcome, RegistrarPolicy, aor_of, apply_register
from .store import LocationStore, StoreError


class _Slot:
    """The Lock of a key someone had to wait for, and how many hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 1  # the holder


class _KeyedLocks:
    """Mutual exclusion per key, FIFO; a key's entry exists only while someone holds or
    waits for it.

    Taking a free key (:meth:`take`) makes no :class:`asyncio.Lock` and never suspends:
    with the memory store a REGISTER never awaits, so nobody ever waits. The first caller
    that finds the key held (:meth:`wait`) makes the Lock, takes it on the holder's
    behalf (free, so without suspending) and waits on it; :meth:`release` hands over.
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Slot | None] = {}  # None: held, nobody waiting yet

    def take(self, key: str) -> bool:
        """Take ``key`` if it is free; whether it was (else :meth:`wait` for it)."""
        slots = self._slots
        if key in slots:
            return False
        slots[key] = None
        return True

    async def wait(self, key: str) -> None:
        """Wait until ``key``, which someone holds, is handed over to us."""
        slot = self._slots[key]
        if slot is None:
            slot = self._slots[key] = _Slot()
            await slot.lock.acquire()  # for the holder: the lock is free, this does not suspend
        slot.users += 1
        try:
            await slot.lock.acquire()
        except BaseException:  # cancelled while waiting: the key was not taken
            self._leave(key, slot)
            raise

    async def acquire(self, key: str) -> None:
        """Take ``key``, waiting for it if someone holds it; pair with :meth:`release`."""
        if not self.take(key):
            await self.wait(key)

    def release(self, key: str) -> None:
        """Give ``key`` up: to the next waiter, else drop its entry."""
        slot = self._slots[key]
        if slot is None:
            del self._slots[key]
        elif self._leave(key, slot):
            slot.lock.release()

    def _leave(self, key: str, slot: _Slot) -> bool:
        """Count one user out; whether others remain."""
        slot.users -= 1
        if slot.users:
            return True
        del self._slots[key]
        return False

    def __len__(self) -> int:
        return len(self._slots)


class Registrar:
    """REGISTER processing and target lookup for local AORs (RFC 3261 §10.3, §16.5).

    ``clock`` gives the time bindings expire by; use a wall clock (``time.time``, the
    default) when the store persists across restarts.
    """

    def __init__(
        self,
        store: LocationStore,
        policy: RegistrarPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy if policy is not None else RegistrarPolicy()
        self.clock = clock
        self._locks = _KeyedLocks()

    @staticmethod
    def aor_of(uri: URI) -> str:
        """The AOR key of ``uri`` (see :func:`sipedge.registrar.service.aor_of`)."""
        return aor_of(uri)

    def policy_for(self, flow: Flow) -> RegistrarPolicy:
        """The policy for a REGISTER that came on ``flow`` (a hook: a subclass may grant
        stream clients shorter registrations, see :mod:`sipedge.ha.registrar`)."""
        return self.policy

    async def register(self, req: Request, flow: Flow, *, nat: bool = False) -> RegisterOutcome:
        """Answer a REGISTER that arrived on ``flow`` and store its bindings; ``nat`` says
        its sender is behind a NAT (its bindings are then reached over ``flow``).

        A store failure gives 500 with nothing changed (RFC 3261 §10.3 step 7).
        """
        try:
            aor = aor_of(req.to.uri)
        except ParseError as exc:
            return RegisterOutcome(exc.status_hint, exc.reason)
        locks = self._locks
        await locks.acquire(aor)
        try:
            existing = await self.store.lookup(aor)
            policy = self.policy_for(flow)
            outcome = apply_register(req, existing, flow, self.clock(), policy, nat=nat, aor=aor)
            if outcome.bindings is not None:
                await self.store.replace(aor, outcome.bindings)
        except StoreError:
            return RegisterOutcome(500, "Server Internal Error")
        finally:
            locks.release(aor)
        return outcome

    async def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of ``aor``, highest q first (stored order among equals)."""
        now = self.clock()
        found = [b for b in await self.store.lookup(aor) if b.expires_at > now]
        found.sort(key=lambda b: -b.q)
        return found

    async def targets(self, aor: str) -> list[Target]:
        """One Target per live binding of ``aor``, highest q first; [] when none.

        ``uri`` is the Contact; with a stored Path (RFC 3327 §5.3) ``routes`` holds the
        Path values to preload as Route headers and ``dst`` the first one's URI. A binding
        reached by its flow (see :attr:`Binding.reached_by_flow`) carries that flow.
        """
        targets = []
        for b in await self.bindings(aor):
            try:
                uri = parse_uri(b.contact)
                dst = parse_name_addr(b.path[0]).uri if b.path else None
            except ParseError:
                continue  # unreadable stored data: skip this binding
            # A client on a stream (TCP, TLS, WS, WSS), an Outbound flow or behind a NAT is
            # reached over the flow it registered on (RFC 5626 §5.3, RFC 7118 §5).
            flow = b.flow if b.reached_by_flow else None
            targets.append(
                Target(uri=uri, dst=dst, q=b.q, routes=b.path, flow=flow, outbound=b.outbound)
            )
        return targets

    async def remove_binding(self, binding: Binding) -> bool:
        """Remove ``binding`` if it is still stored unchanged (not refreshed since it was
        read), e.g. after its NAT keepalives went unanswered. Whether it was removed."""
        aor = binding.aor
        await self._locks.acquire(aor)
        try:
            current = await self.store.lookup(aor)
            keep = [b for b in current if b != binding]
            if len(keep) == len(current):
                return False
            await self.store.replace(aor, keep)
        except StoreError:
            return False
        finally:
            self._locks.release(aor)
        return True

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings expired at ``now`` (run this periodically)."""
        return await self.store.expire(now)
