"""Typed, frozen configuration loaded from one TOML file.

>>> config = load_config(Path("sipedge.toml"), {"server.log_level": "debug"})
>>> str(config.server.listen[0])
'udp:127.0.0.1:5060'

Invalid input raises :class:`ConfigError`, whose ``problems`` list every fault as
``key: problem; fix: what to write``. ``docs/config.md`` is generated from the model
(:func:`sipedge.config.doc.render_reference`).
"""

from .base import Section
from .loader import apply_overrides, load_config, parse_config, read_toml
from .model import (
    LOG_FORMATS,
    LOG_LEVELS,
    Config,
    DnsConfig,
    LimitsConfig,
    ProxyConfig,
    Route,
    ServerConfig,
    TcpConfig,
    TimersConfig,
)
from .problems import ConfigError
from .values import HostPort, Invalid, Listen, parse_listen

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "DnsConfig",
    "HostPort",
    "Invalid",
    "LimitsConfig",
    "Listen",
    "ProxyConfig",
    "Route",
    "Section",
    "ServerConfig",
    "TcpConfig",
    "TimersConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
    "parse_listen",
    "read_toml",
]
