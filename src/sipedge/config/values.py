"""Value types of the configuration and their parsers.

Each parser takes the raw TOML value and either returns the typed value or raises
:class:`Invalid`, which carries the problem and the fix to show the operator. The
``Annotated`` aliases at the bottom plug the parsers into the pydantic models and carry a
:class:`TypeDoc` naming the type in ``docs/config.md``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    Strict,
)
from pydantic_core import CoreSchema, core_schema

from sipedge.sip.errors import ParseError
from sipedge.sip.uri import HOSTNAME, parse_uri

#: Protocols a listener may use today; TLS, WS and WSS join when their transports exist.
LISTEN_PROTOCOLS = ("udp", "tcp", "tls", "ws", "wss")
#: URI schemes a next hop may use (RFC 3261 §19.1).
NEXT_HOP_SCHEMES = ("sip", "sips")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOSTNAME_RE = re.compile(HOSTNAME, re.ASCII)
_PORT_RE = re.compile(r"[0-9]{1,5}", re.ASCII)
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_ROUTER_RE = re.compile(rf"{_DOTTED}:{_DOTTED}", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_LISTEN_EXAMPLE = '"udp:127.0.0.1:5060"'


class Invalid(ValueError):
    """A configuration value is wrong: ``problem`` says what, ``fix`` what to write instead.

    ``key`` names the offending key below the one being validated (set by checks that
    span several keys of a section, e.g. ``"t2"`` in ``[timers]``).
    """

    def __init__(self, problem: str, fix: str, key: str | None = None) -> None:
        super().__init__(f"{problem}; fix: {fix}")
        self.problem = problem
        self.fix = fix
        self.key = key


@dataclass(frozen=True, slots=True)
class TypeDoc:
    """``Annotated`` marker: how ``docs/config.md`` names a value type."""

    name: str


def describe(value: object) -> str:
    """Name a raw TOML value for a message: ``the string "70"``, ``a list``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (difflib), or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _require_str(value: object, example: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {describe(value)}", f"write {example}")
    return value


def _port(text: str, whole: str) -> int:
    if _PORT_RE.fullmatch(text) is None or not 1 <= int(text) <= 65535:
        raise Invalid(
            f'"{whole}" has port "{text}", not a number from 1 to 65535',
            "write a port from 1 to 65535",
        )
    return int(text)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _split_host_port(text: str, fix: str, prefix: str = "") -> tuple[str, str | None, bool]:
    """Split ``host[:port]`` / ``[v6][:port]``; returns (host, port or None, bracketed).

    ``prefix`` (e.g. ``"udp:"``) is put before the corrected value shown in a fix.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise Invalid(f'"{prefix}{text}" has an unclosed "["', fix)
        host, after = text[1:end], text[end + 1 :]
        if after and not after.startswith(":"):
            raise Invalid(f'"{prefix}{text}" has "{after}" after the IPv6 address', fix)
        return host, (after[1:] if after else None), True
    if text.count(":") > 1:
        host, _, port = text.rpartition(":")
        if _is_ipv6(host) and not host.endswith(":"):  # "::1:5060" -> "[::1]:5060"
            example = f"[{host}]:{port}"
        else:  # "::1" or "2001:db8::1" -> "[::1]:5060"
            example = f"[{text}]:5060"
        raise Invalid(
            f'"{prefix}{text}" has an IPv6 address without brackets',
            f'put it in brackets: "{prefix}{example}"',
        )
    host, colon, port = text.partition(":")
    return host, (port if colon else None), False


# --- listeners -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listen:
    """A listening socket: protocol, IP address (IPv6 without brackets) and port.

    ``str()`` gives back the configuration form ``proto:host:port``, IPv6 bracketed.
    """

    proto: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.proto}:{self.host_port}"

    @property
    def host_port(self) -> str:
        """``host:port`` with an IPv6 host in brackets (RFC 5118)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse ``PROTO:HOST:PORT`` (``udp:[::1]:5060`` for IPv6); raises :class:`Invalid`."""
        return parse_listen(text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validate from the ``PROTO:HOST:PORT`` string; serialise back to it."""
        return core_schema.no_info_plain_validator_function(
            _validate_listen, serialization=core_schema.to_string_ser_schema()
        )


def parse_listen(text: str) -> Listen:
    """Parse a listener ``PROTO:HOST:PORT``; HOST is an IP address, IPv6 in brackets."""
    proto, sep, rest = text.partition(":")
    if not sep or not rest:
        raise Invalid(
            f'"{text}" has no protocol, host and port',
            f"write PROTO:HOST:PORT, e.g. {_LISTEN_EXAMPLE}",
        )
    proto = proto.lower()
    if proto not in LISTEN_PROTOCOLS:
        guess = did_you_mean(proto, LISTEN_PROTOCOLS)
        hint = f'write "{guess}:{rest}"' if guess else f"use one of {', '.join(LISTEN_PROTOCOLS)}"
        raise Invalid(f'"{text}" has unknown protocol "{proto}"', hint)
    fix = f'write PROTO:HOST:PORT, e.g. {_LISTEN_EXAMPLE} or "{proto}:[::1]:5060"'
    host, port_s, bracketed = _split_host_port(rest, fix, f"{proto}:")
    if port_s is None:
        shown = f"[{host}]" if bracketed else host
        raise Invalid(
            f'"{text}" has no port', f'write PROTO:HOST:PORT, e.g. "{proto}:{shown}:5060"'
        )
    port = _port(port_s, text)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise Invalid(
            f'"{text}" has host "{host}", which is not an IP address',
            "listen on an IP address (0.0.0.0 or [::] for all); put names in server.domains",
        ) from None
    if bracketed != (ip.version == 6):
        raise Invalid(f'"{text}" brackets an IPv4 address', f'write "{proto}:{ip}:{port}"')
    return Listen(proto, str(ip), port)


def _validate_listen(value: object) -> Listen:
    if isinstance(value, Listen):
        return value
    return parse_listen(_require_str(value, f"a listener, e.g. {_LISTEN_EXAMPLE}"))


# --- host[:port] -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host (name or IP address, IPv6 without brackets) and a port (None: not given)."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validate from ``HOST[:PORT]``; serialise back to it."""
        return core_schema.no_info_plain_validator_function(
            _validate_host_port, serialization=core_schema.to_string_ser_schema()
        )


def parse_host_port(text: str) -> HostPort:
    """Parse ``HOST[:PORT]``: a host name, IPv4 address or ``[IPv6]``, port 1..65535."""
    fix = 'write HOST or HOST:PORT, e.g. "203.0.113.5:5060" or "[2001:db8::5]:5060"'
    host, port_s, bracketed = _split_host_port(text, fix)
    if bracketed:
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise Invalid(f'"{text}" has an invalid IPv6 address', fix) from None
    else:
        host = _check_host_name(host, text, fix)
    return HostPort(host, None if port_s is None else _port(port_s, text))


def _check_host_name(host: str, whole: str, fix: str) -> str:
    """A DNS name or IPv4 address, lower-cased (RFC 3261 §25.1 ``hostname``)."""
    if _HOSTNAME_RE.fullmatch(host) is None:
        raise Invalid(f'"{whole}" is not a valid host name or IP address', fix)
    if host.replace(".", "").isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise Invalid(f'"{whole}" is not a valid IPv4 address', fix) from None
    return host.lower()


def _validate_host_port(value: object) -> HostPort:
    if isinstance(value, HostPort):
        return value
    return parse_host_port(_require_str(value, 'a string "HOST:PORT"'))


# --- scalars ---------------------------------------------------------------------------


def parse_network(value: object) -> IPNetwork:
    """Parse a CIDR network such as ``"10.0.0.0/8"``; a bare address is a /32 or /128."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    fix = 'write an address or network, e.g. "10.0.0.0/8" or "2001:db8::/32"'
    text = _require_str(value, '"10.0.0.0/8"')
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid(f'"{text}" is not a network in CIDR form', fix) from None
    raise Invalid(f'"{text}" has host bits set', f'write "{loose}"')


def parse_ip(value: object) -> str:
    """An IPv4 or IPv6 address (IPv6 without brackets), in its normal string form."""
    text = _require_str(value, '"192.0.2.53"')
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        raise Invalid(
            f'"{text}" is not an IP address', 'write an address, e.g. "192.0.2.53" or "::1"'
        ) from None


def parse_domain(value: object) -> str:
    """A domain name, lower-cased (RFC 3261 §25.1 ``hostname``)."""
    text = _require_str(value, '"example.com"')
    fix = 'write a domain name, e.g. "example.com"'
    if ":" in text or text.startswith("["):
        raise Invalid(f'"{text}" is not a domain name', fix)
    return _check_host_name(text, text, fix)


def parse_optional_domain(value: object) -> str:
    """Like :func:`parse_domain`, but ``""`` (any domain) is allowed."""
    return "" if value == "" else parse_domain(value)


def check_next_hop(value: object) -> str:
    """A ``sip:``/``sips:`` URI, checked with :func:`sipedge.sip.uri.parse_uri`."""
    example = '"sip:192.0.2.10:5060;transport=udp"'
    fix = f"write a SIP URI, e.g. {example}"
    text = _require_str(value, f"a SIP URI, e.g. {example}")
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        raise Invalid(f'"{text}" is not a valid SIP URI ({exc.reason})', fix) from None
    if uri.scheme not in NEXT_HOP_SCHEMES:
        raise Invalid(f'"{text}" is a {uri.scheme}: URI, but a next hop needs sip: or sips:', fix)
    if uri.port is not None and not 1 <= uri.port <= 65535:
        raise Invalid(f'"{text}" has port {uri.port}, not from 1 to 65535', fix)
    return text


def check_optional_next_hop(value: object) -> str:
    """Like :func:`check_next_hop`, but ``""`` (none) is allowed."""
    return "" if value == "" else check_next_hop(value)


def check_router(value: object) -> str:
    """``""`` or ``"package.module:Class"``: where to import a custom Router from."""
    text = _require_str(value, '"module:Class"')
    if text and _ROUTER_RE.fullmatch(text) is None:
        raise Invalid(
            f'"{text}" is not of the form module:Class',
            'write "mypackage.routing:MyRouter", or "" for the default router',
        )
    return text


def check_header_text(value: object) -> str:
    """Text that goes into a header value: no control characters (RFC 3261 §25.1)."""
    text = _require_str(value, '"sipedge"')
    if _CONTROL_RE.search(text):
        raise Invalid(f"{text!r} contains control characters", "remove them")
    return text


def one_or_many(value: object) -> object:
    """Accept a single string where a list is expected (``to = "sip:..."``)."""
    return [value] if isinstance(value, str) else value


def non_empty(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Reject an empty list."""
    if not items:
        raise Invalid("the list is empty", "give at least one value")
    return items


def unique(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Reject a list that repeats a value."""
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            raise Invalid(f'"{item}" is listed twice', "list each value once")
        seen.add(item)
    return items


def _freeze_mapping(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


def _mapping_to_strings(value: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


# --- Annotated aliases used by the models ------------------------------------------------

T = TypeVar("T")

#: A list in TOML, an immutable tuple in the model (items keep strict validation).
Items = Annotated[tuple[T, ...], Strict(False)]
Network = Annotated[
    IPNetwork, PlainValidator(parse_network), PlainSerializer(str), TypeDoc("CIDR network")
]
IP = Annotated[str, PlainValidator(parse_ip), TypeDoc("IP address")]
Domain = Annotated[str, PlainValidator(parse_domain), TypeDoc("domain name")]
OptionalDomain = Annotated[str, PlainValidator(parse_optional_domain), TypeDoc('domain name or ""')]
NextHop = Annotated[str, PlainValidator(check_next_hop), TypeDoc("SIP URI")]
OptionalNextHop = Annotated[str, PlainValidator(check_optional_next_hop), TypeDoc('SIP URI or ""')]
RouterSpec = Annotated[str, PlainValidator(check_router), TypeDoc('"module:Class" or ""')]
HeaderText = Annotated[str, PlainValidator(check_header_text), TypeDoc("string")]
NextHops = Annotated[
    tuple[NextHop, ...],
    Strict(False),
    BeforeValidator(one_or_many),
    AfterValidator(non_empty),
    TypeDoc("SIP URI or list of SIP URIs"),
]
ListenMap = Annotated[
    Mapping[Listen, HostPort],
    AfterValidator(_freeze_mapping),
    PlainSerializer(_mapping_to_strings),
    TypeDoc('table of listener -> "HOST[:PORT]"'),
]
