"""No user enumeration through INVITE: an untrusted caller gets the same 404 for a user who
exists but has no binding as for a user who does not exist (issue 8); trusted peers and
operators who turn the option off keep 404 vs 480 (issue 4, RFC 3261 §21.4.4/§21.4.18)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig
from sipedge.sip.message import Response
from sipedge.sip.uri import URI

from .harness import Harness, invite


class NoBindings:
    """A registrar where nobody is registered."""

    async def register(self, req: Any, flow: Any, **kw: Any) -> Any:
        raise AssertionError("not used")

    async def targets(self, aor: str) -> list[Any]:
        return []

    @staticmethod
    def aor_of(uri: URI) -> str:
        return f"sip:{uri.user}@{uri.host}"


class Users:
    """An authenticator that knows only ``bob``."""

    async def check(self, req: Any, **kw: Any) -> Any:
        raise AssertionError("a foreign caller is not challenged")

    async def user_exists(self, username: str) -> bool:
        return username == "bob"


def final_status(user: str, *, trusted: bool, hide: bool) -> int:
    async def main() -> int:
        tasks: list[asyncio.Future[Any]] = []

        def spawn(aw: Awaitable[Any]) -> None:
            tasks.append(asyncio.ensure_future(aw))

        config = DefaultRouterConfig(registrar=NoBindings(), auth=Users(), hide_users=hide)
        h = Harness(trusted=trusted, router=DefaultRouter(config), spawn=spawn)
        h.feed(invite(uri=f"sip:{user}@example.org"))
        for _ in range(10):
            await asyncio.sleep(0)
        finals = [m.status for m, _ in h.take() if isinstance(m, Response) and m.status >= 200]
        assert len(finals) == 1, finals
        return finals[0]

    return asyncio.run(main())


@pytest.mark.parametrize("trusted", [False, True])
def test_statuses(trusted: bool) -> None:
    hidden = (
        final_status("bob", trusted=trusted, hide=True),
        final_status("zed", trusted=trusted, hide=True),
    )
    shown = (
        final_status("bob", trusted=trusted, hide=False),
        final_status("zed", trusted=trusted, hide=False),
    )
    assert shown == (480, 404)
    assert hidden == ((480, 404) if trusted else (404, 404))
