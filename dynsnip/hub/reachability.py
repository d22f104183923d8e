"""Is the Hub evidently unreachable? Then load from the cache at once instead of retrying.

huggingface_hub retries a refused connection with back-off (30-47 s, a log line per try)
before it falls back to the cache. When a single TCP connection to ``HF_ENDPOINT`` is
refused, or its host name does not resolve, no retry will help: :func:`hub_unreachable`
says so in milliseconds and :func:`cache_only` makes the load that follows read the local
cache only (``HF_HUB_OFFLINE`` for the duration of the call), so a cached model still loads
and an uncached one fails with one message that names the cache and ``HF_HUB_OFFLINE``.
Behind a proxy the endpoint is not dialled directly, so nothing is probed there.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

__all__ = ["hub_unreachable", "cache_only", "PROBE_TIMEOUT_S"]

PROBE_TIMEOUT_S = 3.0
"""A connection not answered within this time is not called unreachable (a slow network is
left to huggingface_hub's own timeouts and retries); refusals and DNS failures are immediate."""

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_unreachable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``HF_ENDPOINT`` cannot be reached (``"connection refused"``...), when that is evident
    at once; None when it answers, is slow, sits behind a proxy, or offline mode is on."""
    from huggingface_hub import constants

    if constants.is_offline_mode() or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None
    url = urlsplit(constants.ENDPOINT)
    if not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return None
    except socket.timeout:
        return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror as err:
        return f"host name {url.hostname!r} does not resolve ({err.strerror or err})"
    except OSError as err:
        return (err.strerror or str(err)).lower()


@contextmanager
def cache_only() -> Iterator[None]:
    """huggingface_hub reads the local cache only inside the block (as with ``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
