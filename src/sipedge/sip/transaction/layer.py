"""The transaction layer: matching, the transaction tables and one timer heap (RFC 3261 §17).

Sans-I/O: messages (already parsed) and ``now`` go in; outputs come out through one ordered
queue, drained with :meth:`TransactionLayer.next_event` or :meth:`TransactionLayer.events`.
Every input method returns None; drain the queue after each input (and create the server
transaction for a :class:`RequestReceived` before feeding the next message). Outputs are
events for the TU and :class:`SendMessage` actions, in the order they happened.

The caller arms one timer at :meth:`get_timer` and calls :meth:`handle_timer` when it fires
(ARCHITECTURE.md §4.1). The deadlines live in a heap with lazy deletion: an entry is valid
only while it carries its transaction's current timer token.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

from ..build import build_cancel, build_response
from ..errors import ParseError, ProtocolError
from .client import ClientTransaction, ICTState
from .events import (
    AckReceived,
    CancelReceived,
    Output,
    RequestReceived,
    SendMessage,
    StrayResponseReceived,
)
from .key import ClientKey, LegacyKey, ServerKey, client_key, server_key
from .server import ServerTransaction
from .summary import RequestSummary
from .timers import TimerConfig

if TYPE_CHECKING:
    from ..message import Message, Request, Response

Transaction = ClientTransaction | ServerTransaction

# Transports without delivery guarantees: retransmission timers run on these (§17).
UNRELIABLE_TRANSPORTS = frozenset({"UDP", "DTLS"})


def is_reliable(message: Message) -> bool:
    """Whether the top Via names a reliable transport (TCP, TLS, SCTP, WS, WSS, ...)."""
    return bool(message.vias) and message.vias[0].transport.upper() not in UNRELIABLE_TRANSPORTS


def request_key(request: Request, method: str | None = None) -> ServerKey | LegacyKey:
    """The §17.2.3 server key of ``request`` (as if its method were ``method``)."""
    if not request.vias:
        raise ParseError("request without Via")
    via = request.vias[0]
    return server_key(
        method=method or request.method,
        branch=via.branch,
        sent_by=via.sent_by,
        transport=via.transport,
        request_uri=request.uri_text,
        from_tag=request.from_tag,
        call_id=request.call_id,
        cseq_number=request.cseq.number,
    )


def response_key(response: Response) -> ClientKey | None:
    """The §17.1.3 client key of ``response``, None without a top Via branch."""
    if not response.vias:
        return None
    return client_key(response.vias[0].branch, response.cseq.method)


class TransactionLayer:
    """All transactions of one SIP element, their matching tables and timers.

    ``config`` sets T1, T2, T4 and Timer D. See the module docstring for the I/O contract.
    """

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey | LegacyKey, ServerTransaction] = {}
        self._queue: deque[Output] = deque()
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = 0

    def __len__(self) -> int:
        """How many transactions are live."""
        return len(self._clients) + len(self._servers)

    # ------------------------------------------------------------------ outputs
    def next_event(self) -> Output | None:
        """Pop the oldest queued output, None when the queue is empty."""
        return self._queue.popleft() if self._queue else None

    def events(self) -> list[Output]:
        """Pop every queued output, oldest first."""
        out = list(self._queue)
        self._queue.clear()
        return out

    # ------------------------------------------------------------------ client side
    def send_request(
        self, request: Request, dest: object, now: float, *, reliable: bool | None = None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` towards ``dest`` (§17.1).

        The request must already carry its own top Via with a unique branch (§16.6 step 8).
        ``reliable`` defaults to what the top Via transport says. An ACK is no transaction:
        send it with :meth:`send_stateless`.
        """
        if request.method == "ACK":
            raise ProtocolError("ACK has no client transaction; use send_stateless")
        key = client_key(request.vias[0].branch if request.vias else None, request.method)
        if key is None:
            raise ProtocolError("a request needs a top Via with a branch to be sent")
        if key in self._clients:
            raise ProtocolError(f"client transaction {key} exists already")
        if reliable is None:
            reliable = is_reliable(request)
        txn = ClientTransaction(request, dest, key, self.config, reliable, now)
        self._clients[key] = txn
        self._apply(txn, txn.start())
        return txn

    def cancel(self, transaction: ClientTransaction, now: float) -> ClientTransaction | None:
        """Cancel a pending INVITE (RFC 3261 §9.1, §16.10).

        In "Proceeding" the CANCEL's own client transaction is started and returned. In
        "Calling" the CANCEL waits for the first provisional response ("MUST NOT be sent"
        before one) and None is returned; :attr:`ClientTransaction.cancel_transaction` holds
        it once sent. After a final response there is nothing to cancel: None.
        """
        if not transaction.is_invite:
            raise ProtocolError("only INVITE client transactions can be cancelled")
        if transaction.cancel_transaction is not None:
            return transaction.cancel_transaction
        state = transaction.state
        if state is ICTState.CALLING:
            transaction.cancel_requested = True
        elif state is ICTState.PROCEEDING:
            transaction.cancel_requested = True
            return self._send_cancel(transaction, now)
        return None

    def _send_cancel(self, invite: ClientTransaction, now: float) -> ClientTransaction:
        request = invite.request
        if isinstance(request, RequestSummary):  # pragma: no cover - only before a final
            raise ProtocolError("cannot cancel a transaction that has a final response")
        cancel = build_cancel(request)
        txn = self.send_request(cancel, invite.dest, now, reliable=invite.reliable)
        invite.cancel_transaction = txn
        return txn

    def receive_response(self, response: Response, source: object, now: float) -> None:
        """Feed a response that arrived from ``source`` (§17.1.3, §18.1.2)."""
        key = response_key(response)
        txn = self._clients.get(key) if key is not None else None
        if txn is None:
            self._queue.append(StrayResponseReceived(response, source))
            return
        self._apply(txn, txn.receive_response(response, source, now))
        pending = txn.cancel_requested and txn.cancel_transaction is None
        if pending and txn.state is ICTState.PROCEEDING:
            self._send_cancel(txn, now)  # §9.1: the CANCEL waited for a provisional

    # ------------------------------------------------------------------ server side
    def receive_request(self, request: Request, source: object, now: float) -> None:
        """Feed a request that arrived from ``source`` (§17.2.3, §9.2)."""
        key = request_key(request)
        if request.method == "ACK":
            self._receive_ack(request, key, source, now)
            return
        txn = self._lookup(key, request.to_tag)
        if txn is not None:
            self._apply(txn, txn.receive_request(now))
        elif request.method == "CANCEL":
            self._queue.append(CancelReceived(request, source, self.cancel_target(request)))
        else:
            self._queue.append(RequestReceived(request, source))

    def _receive_ack(
        self, ack: Request, key: ServerKey | LegacyKey, source: object, now: float
    ) -> None:
        txn = self._lookup(key, ack.to_tag, ack=True)
        if txn is not None:
            self._apply(txn, txn.receive_ack(ack, source, now))
        else:
            self._queue.append(AckReceived(ack, source, None))

    def cancel_target(self, cancel: Request) -> ServerTransaction | None:
        """The live INVITE server transaction a CANCEL targets (§9.2), or None."""
        return self._lookup(request_key(cancel, "INVITE"), cancel.to_tag)

    def _lookup(
        self, key: ServerKey | LegacyKey, to_tag: str | None, *, ack: bool = False
    ) -> ServerTransaction | None:
        """The server transaction of ``key``; with the RFC 2543 rules the To tag must match
        the request's (or, for an ACK, the To tag of the response sent) too (§17.2.3)."""
        txn = self._servers.get(key)
        if txn is None or isinstance(key, ServerKey):
            return txn
        expected = txn.response_to_tag if ack else txn.request.to_tag
        return txn if expected == to_tag else None

    def create_server_transaction(
        self,
        request: Request,
        source: object,
        now: float,
        *,
        reliable: bool | None = None,
        send_trying: bool | None = None,
    ) -> ServerTransaction:
        """Create the server transaction for a request reported by :class:`RequestReceived`
        or :class:`CancelReceived` (§17.2.3: the TU decides).

        Responses go to ``source``. An INVITE transaction sends 100 Trying at once unless
        ``send_trying`` is False (§17.2.1: unless the TU answers within 200 ms).
        """
        if request.method == "ACK":
            raise ProtocolError("ACK creates no server transaction")
        key = request_key(request)
        if self._lookup(key, request.to_tag) is not None:
            raise ProtocolError("a server transaction for this request exists already")
        if reliable is None:
            reliable = is_reliable(request)
        txn = ServerTransaction(request, source, key, self.config, reliable, now)
        self._servers[key] = txn
        if request.method == "INVITE" and send_trying is not False:
            self.send_response(txn, build_response(request, 100), now)
        return txn

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send a response from the TU through its server transaction (§17.2)."""
        self._apply(transaction, transaction.send_response(response, now))

    # ------------------------------------------------------------------ both sides
    def receive_message(self, message: Request | Response, source: object, now: float) -> None:
        """Feed a parsed message: requests and responses go their own way."""
        if message.is_request:
            self.receive_request(message, source, now)  # type: ignore[arg-type]
        else:
            self.receive_response(message, source, now)  # type: ignore[arg-type]

    def transport_error(
        self, transaction: Transaction, now: float, reason: str = "transport error"
    ) -> None:
        """Report that the transport failed for ``transaction`` (§17.1.4, §17.2.4)."""
        self._apply(transaction, transaction.transport_error(reason, now))

    def abandon(self, transaction: Transaction, now: float) -> None:
        """End ``transaction`` at once without sending anything (TU decision, §9.1)."""
        self._apply(transaction, transaction.abandon(now))

    def send_stateless(self, message: Message | bytes, dest: object) -> None:
        """Queue a message outside any transaction (a 2xx ACK, a stateless response)."""
        data = message if isinstance(message, bytes) else message.to_bytes()
        self._queue.append(SendMessage(data, dest))

    # ------------------------------------------------------------------ timers
    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions, None when no timer runs."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2]._timer_seq:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, txn = heapq.heappop(heap)
            if seq != txn._timer_seq:
                continue  # stale entry (lazy deletion)
            txn._timer_seq = -1
            self._apply(txn, txn.handle_timer(now))

    def _apply(self, txn: Transaction, outputs: list[Output]) -> None:
        self._queue.extend(outputs)
        if txn.terminated:
            self._forget(txn)
        self._schedule(txn)

    def _forget(self, txn: Transaction) -> None:
        if isinstance(txn, ClientTransaction):
            if self._clients.get(txn.key) is txn:
                del self._clients[txn.key]
        elif self._servers.get(txn.key) is txn:
            del self._servers[txn.key]

    def _schedule(self, txn: Transaction) -> None:
        deadline = txn.next_deadline()
        if deadline is None:
            txn._timer_seq = -1
        elif txn._timer_seq < 0 or txn._timer_deadline != deadline:
            self._seq += 1
            txn._timer_seq = self._seq
            heapq.heappush(self._heap, (deadline, self._seq, txn))
            if len(self._heap) > 2 * len(self) + 64:
                self._compact()
        txn._timer_deadline = deadline

    def _compact(self) -> None:
        """Drop stale heap entries; amortised O(1) per push (runs after O(n) pushes)."""
        self._heap = [e for e in self._heap if e[1] == e[2]._timer_seq]
        heapq.heapify(self._heap)
