"""Importing Ray and joining a cluster, with errors that say what to do.

`--ray` with no address starts a local Ray instance for the command (and stops it at the end);
`--ray auto` joins the cluster this machine belongs to (`ray start`), `--ray HOST:PORT` the
cluster whose head is there, `--ray ray://HOST:PORT` one through Ray Client. An address that
does not answer is refused before anything is started or stored: a TCP probe first, because
`ray.init` would otherwise keep retrying for a minute.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError, InputError

INSTALL_COMMAND = "pip install 'manyminds[ray]'"
INSTALL_HINT = f"{INSTALL_COMMAND} (in a checkout: pip install -e '.[ray]')"
PROBE_TIMEOUT_S = 3.0


class RayMissing(ConfigError):
    """`--ray` was asked for and Ray is not installed."""


class RayUnreachable(InputError):
    """The Ray address given does not answer."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayMissing(f"--ray needs Ray, which is not installed here ({exc}). Install it with: {INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of an explicit address, or None for "auto"."""
    text = address.removeprefix("ray://")
    if address == "auto":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayUnreachable(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto.")
    return host.strip("[]"), int(port)


def probe(address: str) -> None:
    """Raise `RayUnreachable` unless something accepts a TCP connection at `address`."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnreachable(f"No Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
                             "`ray start --head`, or leave the address out to start a local instance.") from None  # fmt: skip


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, initialised for the block: joined at `address`, or a local instance when it is None
    (or empty). A session this process already has (tests, notebooks) is used as it is and
    left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        probe(address)
    try:
        # Workers write nothing to the driver's terminal: their results come back as values.
        ray.init(address=address or None, include_dashboard=False, log_to_driver=bool(os.environ.get("MANYMINDS_RAY_LOGS")))
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        raise RayUnreachable(f"Could not start or join Ray {where}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
