"""The [ha] section: defaults, a full Redis setup, and errors that say what to write."""

from __future__ import annotations

import tomllib

import pytest

from sipedge.config import ConfigError, parse_config
from sipedge.config.ha import HaConfig
from sipedge.ha.client import connect, default_node_name
from sipedge.ha.wiring import shared_state


def test_default_is_the_embedded_memory_backend() -> None:
    config = parse_config({})
    assert config.ha == HaConfig() and config.ha.backend == "memory"
    assert shared_state(config, lambda: 0.0) is None


def test_full_redis_section() -> None:
    data = tomllib.loads(
        """
[ha]
backend = "redis"
redis_url = "redis://:secret@10.0.0.5:6380/2"
sentinels = ["10.0.0.6:26379", "[2001:db8::6]:26379"]
sentinel_master = "edge"
key_prefix = "edge-eu:"
node = "node1"
timeout = 0.5
retry_interval = 2.0
"""
    )
    ha = parse_config(data).ha
    assert (ha.backend, ha.sentinels, ha.key_prefix, ha.timeout) == (
        "redis",
        ("10.0.0.6:26379", "[2001:db8::6]:26379"),
        "edge-eu:",
        0.5,
    )
    state = shared_state(parse_config(data), lambda: 0.0)
    assert state is not None and state.link.node == "node1" and state.link.prefix == "edge-eu:"


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"backend": "etcd"}, "backend"),
        ({"redis_url": "http://x"}, "not a Redis URL"),
        ({"sentinels": ["nohost"]}, "HOST:PORT"),
        ({"key_prefix": "a b"}, "key_prefix"),
        ({"timeout": 0}, "timeout"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_errors_name_the_key_and_the_fix(table: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"ha": table})
    text = "\n".join(info.value.problems)
    assert "ha." in text and words in text


def test_connect_builds_a_url_client_or_a_sentinel_client() -> None:
    plain = connect(HaConfig(backend="redis", redis_url="redis://127.0.0.1:1/0", node="x"))
    assert plain.node == "x" and "127.0.0.1" in repr(plain.redis)
    sentinel = connect(HaConfig(backend="redis", sentinels=("127.0.0.1:1",)))
    assert "Sentinel" in repr(sentinel.redis.connection_pool)
    assert sentinel.node == default_node_name()
