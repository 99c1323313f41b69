"""Choosing the response to forward when every branch has a final one (RFC 3261 §16.7)."""

from __future__ import annotations

from collections.abc import Collection

from ..sip.message import Response

# §16.7 step 6: "the proxy SHOULD give preference to responses that provide information
# affecting resubmission of this request, such as 401, 407, 415, 420, and 484".
_PREFERRED = (401, 407, 415, 420, 484)


def _rank(resp: Response) -> tuple[int, int, int]:
    status = resp.status
    cls = status // 100
    klass = 0 if cls == 6 else cls  # any 6xx wins
    preferred = 0 if status in _PREFERRED else 1
    return (klass, preferred, status)


def choose_best(responses: list[Response], local: Collection[Response] = ()) -> Response | None:
    """Pick the final response to forward among non-2xx finals (§16.7 step 6).

    6xx beats everything; otherwise the lowest class wins, preferring 401/407/415/420/484.
    A chosen 401 or 407 collects the challenges of every other 401/407 (§16.7 step 7).
    A 503 received from downstream is forwarded as 500 (§16.7 step 6: the proxy must not
    pass a downstream 503 on); a 503 the proxy made itself (``local``, e.g. an
    unresolvable destination) stays a 503.
    """
    finals = [r for r in responses if r.status >= 300]
    if not finals:
        return None
    best = min(finals, key=_rank)
    if best.status in (401, 407):
        _merge_challenges(best, finals)
    if best.status == 503 and not any(best is r for r in local):
        best.set_status(500, "Server Internal Error")
    return best


def _merge_challenges(best: Response, finals: list[Response]) -> None:
    for other in finals:
        if other is best or other.status not in (401, 407):
            continue
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            for value in other.header_list(name):
                best.add_header(name, value)
