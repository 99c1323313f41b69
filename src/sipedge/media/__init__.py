"""Media-relay control: rtpengine's ng protocol and a UDP-over-TCP tunnel for it.

``bencode`` and ``ng`` are pure (codec, messages, cookies, tcp-ng framing, node specs and
health); ``rtpengine`` is the async client (:class:`RtpEngine`) over UDP, TCP and WebSocket
with weighted node sets; ``tunnel`` carries ng datagrams over one TCP connection.
"""

from __future__ import annotations

from .bencode import BencodeError, decode, encode
from .ng import (
    NodeSpec,
    RelayError,
    RelayRejected,
    RelayTimeout,
    RelayUnavailable,
    parse_node_spec,
)
from .rtpengine import MediaRelay, NodeStatus, RelayConfig, RelayUnreachable, Reply, RtpEngine

__all__ = [
    "BencodeError",
    "MediaRelay",
    "NodeSpec",
    "NodeStatus",
    "RelayConfig",
    "RelayError",
    "RelayRejected",
    "RelayTimeout",
    "RelayUnavailable",
    "RelayUnreachable",
    "Reply",
    "RtpEngine",
    "decode",
    "encode",
    "parse_node_spec",
]
