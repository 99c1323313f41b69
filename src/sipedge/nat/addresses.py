"""Address tests used by NAT detection: private space and host comparison.

"Private" here means an address a host behind a NAT gets and nobody outside can reach:
RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared address space for carrier-grade
NAT (100.64/10), the IETF protocol assignments block 192.0.0.0/24 (RFC 6890; Kamailio's
``nat_addr_mode`` 1 counts it too) and, for IPv6, unique local (fc00::/7, RFC 4193) and
link-local (fe80::/10) addresses. Loopback is not private: a client on 127.0.0.1 talks to
us directly.
"""

from __future__ import annotations

import functools
import ipaddress

_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598 (carrier-grade NAT)
        "192.0.0.0/24",  # RFC 6890 (DS-Lite B4, RFC 6333)
        "fc00::/7",  # RFC 4193
        "fe80::/10",  # RFC 4291 link-local
    )
)


@functools.lru_cache(maxsize=4096)
def ip_of(host: str) -> str | None:
    """The canonical text of an IP literal host (brackets allowed), else None (a name)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def is_private(host: str) -> bool:
    """Whether ``host`` is an IP literal in private space (see the module docstring).

    An IPv4-mapped IPv6 address counts as its IPv4 address; a host name is never private.
    """
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in _PRIVATE_NETS)


def same_ip(host: str, ip: str) -> bool:
    """Whether ``host`` (maybe bracketed, maybe a name) is the IP literal ``ip``.

    A host name never equals an address: RFC 3261 §18.2.1 adds ``received`` for it too.
    """
    a = ip_of(host)
    return a is not None and a == ip_of(ip)
