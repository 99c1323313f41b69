"""Stateless digest nonces and the nonce-count replay guard (RFC 7616 §3.3, §3.4, §5.4).

:class:`NonceFactory` makes and checks nonces that carry their creation time and an HMAC, so
any node with the same secret verifies them without shared state; :class:`NonceCounter`
remembers the highest nc seen per nonce. Pure: the clock is an argument.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import itertools
import math
from collections import OrderedDict
from enum import Enum

from .errors import ProtocolError

__all__ = ["NonceCounter", "NonceFactory", "NonceStatus"]


def _b(text: str) -> bytes:
    """UTF-8 bytes of ``text``, restoring bytes a surrogateescape decode kept (RFC 7616 §4)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class NonceStatus(Enum):
    """What :meth:`NonceFactory.check` found out about a nonce."""

    VALID = "valid"
    STALE = "stale"  # genuine, but older than the lifetime (answer with stale=true)
    INVALID = "invalid"  # not made with this secret and ``extra``: forged or garbled


_NONCE_TAG = b"sipedge-digest-nonce-v1\x00"
_NONCE_MAC = 16
_NONCE_LEN = 8 + 8 + _NONCE_MAC
_NONCE_TEXT_LEN = -(-_NONCE_LEN * 4 // 3)  # unpadded base64url characters


class NonceFactory:
    """Stateless nonces: creation time, a unique part and an HMAC (RFC 7616 §5.4, §5.5).

    Any node holding the same ``secret`` verifies a nonce without shared state. ``extra``
    (e.g. the realm or the client's address) is bound into the HMAC, so a nonce issued for one
    realm or peer is INVALID for another. Nonces older than ``lifetime`` seconds are STALE;
    those dated more than ``max_skew`` seconds in the future (a clock-skewed peer node) too.
    The last ``remember`` (at least) nonces made here are checked from memory: same answer,
    no HMAC.
    """

    def __init__(
        self, secret: bytes, lifetime: float, *, max_skew: float = 5.0, remember: int = 4096
    ) -> None:
        if len(secret) < 16:
            raise ProtocolError("nonce secret must be at least 16 bytes")
        if lifetime <= 0:
            raise ProtocolError("nonce lifetime must be positive")
        if remember < 0:
            raise ProtocolError("remember must not be negative")
        self._inner, self._outer = _hmac_pads(bytes(secret))
        self._inner.update(_NONCE_TAG)
        self._lifetime = lifetime
        self._max_skew = max_skew
        self._serial = 0
        self._issued: dict[str, tuple[str, int]] = {}  # nonce -> (extra, creation ms)
        self._remember = remember

    def _mac(self, payload: bytes, extra: str) -> bytes:
        """HMAC-SHA256(secret, tag + payload + extra), truncated (RFC 2104 from saved pads)."""
        inner = self._inner.copy()
        inner.update(payload + _b(extra))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_NONCE_MAC]

    def make(self, now: float, extra: str = "", entropy: bytes = b"") -> str:
        """A fresh nonce dated ``now``; pass a few random bytes as ``entropy`` when serving
        from several nodes, so that nonces made at the same millisecond differ."""
        if not math.isfinite(now) or not 0 <= now * 1000 < 1 << 64:
            raise ProtocolError("now out of range for a nonce timestamp")
        self._serial = (self._serial + 1) & ((1 << 64) - 1)
        serial = self._serial.to_bytes(8, "big")
        unique = hashlib.blake2b(entropy + serial, digest_size=8).digest()
        ms = int(now * 1000)
        payload = ms.to_bytes(8, "big") + unique
        nonce = _b64(payload + self._mac(payload, extra)).decode("ascii")
        if self._remember:  # at twice ``remember``, forget the older half
            issued = self._issued
            issued[nonce] = (extra, ms)
            if len(issued) >= 2 * self._remember:
                self._issued = dict(itertools.islice(issued.items(), self._remember, None))
        return nonce

    def check(self, nonce: str, now: float, extra: str = "") -> NonceStatus:
        """VALID, STALE or INVALID; never raises on any peer input."""
        if not math.isfinite(now):
            raise ProtocolError("now must be finite")
        known = self._issued.get(nonce)
        ms = known[1] if known is not None and known[0] == extra else self._made_at(nonce, extra)
        if ms is None:
            return NonceStatus.INVALID
        age = now - ms / 1000.0
        if age > self._lifetime or age < -self._max_skew:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def _made_at(self, nonce: str, extra: str) -> int | None:
        """The creation time (ms) of a ``nonce`` made with our secret and ``extra``, else None."""
        if len(nonce) != _NONCE_TEXT_LEN:  # the only length a canonical spelling has
            return None
        raw = _unb64(nonce)
        if raw is None or len(raw) != _NONCE_LEN:
            return None
        payload, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._mac(payload, extra)):
            return None
        return int.from_bytes(payload[:8], "big")


def _unb64(text: str) -> bytes | None:
    """Decode canonical unpadded base64url only: one nonce has exactly one spelling, so the
    nc tracker (keyed by the string) cannot be bypassed with an alternative encoding."""
    if not text.isascii() or len(text) > 64:
        return None
    data = text.encode("ascii")
    try:
        raw = binascii.a2b_base64(data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == data else None


def _b64(raw: bytes) -> bytes:
    """Unpadded base64url (RFC 4648 §5) of ``raw``."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the HMAC inner and outer key pads (RFC 2104 §2), to be copied."""
    if len(key) > 64:  # the SHA-256 block size
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    return inner, hashlib.sha256(key.translate(_OPAD))


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class NonceCounter:
    """Bounded memory of the highest nonce-count seen per nonce (RFC 7616 §3.4, §5.4).

    Entries expire ``lifetime`` seconds after the nonce was first seen; use the
    :class:`NonceFactory` lifetime so that an expired entry belongs to a stale nonce. When
    ``max_entries`` is reached the oldest entry is dropped (a replay of that nonce is then
    no longer detected: size this for the expected registration rate).
    """

    def __init__(self, max_entries: int, lifetime: float) -> None:
        if max_entries < 1:
            raise ProtocolError("max_entries must be at least 1")
        self._max = max_entries
        self._lifetime = lifetime
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen and not now - next(iter(seen.values()))[0] <= self._lifetime:
            seen.popitem(last=False)

    def check(self, nonce: str, nc: int, now: float) -> bool:
        """Accept and remember ``nc`` if it is above the last one seen for ``nonce``."""
        self._expire(now)
        entry = self._seen.get(nonce)
        if entry is not None:
            first, last = entry
            if nc <= last:
                return False
            self._seen[nonce] = (first, nc)
            return True
        if nc < 1:
            return False
        while len(self._seen) >= self._max:
            self._seen.popitem(last=False)
        self._seen[nonce] = (now, nc)
        return True
