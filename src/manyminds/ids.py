"""ULIDs: 26-character, lexicographically sortable identifiers.

Layout (https://github.com/ulid/spec): a 48-bit Unix time in milliseconds, then 80 random bits,
written as 26 Crockford base32 characters. Sorting ids as strings sorts runs by creation time,
which is why run ids (and eval run ids) are ULIDs instead of UUID4s. A module of its own, outside
the store, so the pipeline can make a run id without importing the database layer.

Within one process ids are strictly increasing, also when several are made in the same
millisecond (the random part is incremented instead of redrawn) and when the clock steps back.
Across processes only uniqueness is promised, which the 80 random bits give.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_LENGTH = 26
_RANDOM_BITS = 80
_MAX_TIME_MS = (1 << 48) - 1
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}


class UlidGenerator:
    """Makes monotonic ULIDs. Thread-safe; one shared instance serves the whole process."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def reset(self) -> None:
        with self._lock:
            self._last_ms = -1
            self._last_random = 0

    def new(self) -> str:
        with self._lock:
            ms = self._clock_ns() // 1_000_000
            if ms <= self._last_ms:
                # Same millisecond, or the clock went back: stay on the last timestamp and count
                # up so that ids made later always sort later.
                ms = self._last_ms
                rand = self._last_random + 1
                if rand >> _RANDOM_BITS:
                    # 2**80 ids in one millisecond cannot happen in practice; borrow the next one.
                    ms += 1
                    rand = secrets.randbits(_RANDOM_BITS)
            else:
                rand = secrets.randbits(_RANDOM_BITS)
            if ms > _MAX_TIME_MS:
                raise OverflowError("ULID timestamps end in the year 10889")
            self._last_ms, self._last_random = ms, rand
        return encode((ms << _RANDOM_BITS) | rand)


def encode(value: int) -> str:
    """128-bit integer -> 26 Crockford base32 characters (the top two bits are always zero)."""
    chars = []
    for _ in range(ULID_LENGTH):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode(ulid: str) -> int:
    ulid = ulid.upper()
    if len(ulid) != ULID_LENGTH or any(c not in _DECODE for c in ulid) or ulid[0] > "7":
        raise ValueError(f"not a ULID: {ulid!r}")
    value = 0
    for c in ulid:
        value = (value << 5) | _DECODE[c]
    return value


def is_ulid(text: str) -> bool:
    try:
        decode(text)
    except ValueError:
        return False
    return True


def ulid_datetime(ulid: str) -> datetime:
    """When the ULID was made (UTC, millisecond precision)."""
    ms = decode(ulid) >> _RANDOM_BITS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


_generator = UlidGenerator()
# A forked child inherits the parent's last (timestamp, random) pair; without a reset the two
# processes would count up from the same value and could hand out the same id.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_generator.reset)


def new_ulid() -> str:
    return _generator.new()
