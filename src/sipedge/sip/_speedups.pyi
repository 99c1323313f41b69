from collections.abc import Callable
from typing import TypeVar

from ._accel import ScanResult, ViaParts

_T = TypeVar("_T")

def scan(data: bytes, max_headers: int, max_line: int, max_vias: int, /) -> ScanResult | None: ...
def fields(
    data: bytes, head_len: int, field: Callable[[str, str, str, int], _T], /
) -> list[_T]: ...
def via(value: str, /) -> list[ViaParts] | None: ...
