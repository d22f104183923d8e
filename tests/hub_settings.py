"""Point ``huggingface_hub`` at a given endpoint and cache, whatever the import order.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``... once, at import,
into ``huggingface_hub.constants`` (and builds a module-level ``HfApi`` from them). timm
imports ``huggingface_hub`` on import, so environment variables alone are not enough once
anything imported timm: :func:`apply_hub_environment` sets both the environment (for subprocesses
and later imports) and the already-imported constants.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

__all__ = ["hub_environment", "apply_hub_environment"]


def hub_environment(endpoint: str, home: Path, offline: bool = False) -> dict[str, str]:
    """The environment variables that pin ``huggingface_hub`` to ``endpoint`` and ``home``."""
    home = Path(home)
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "TORCH_HOME": str(home / "torch"),
    }


def apply_hub_environment(settings: dict[str, str], setenv: Callable[[str, str], None],
                       setattr_: Callable[[object, str, object], None]) -> None:
    """Apply ``settings`` to the environment and, if imported, to ``huggingface_hub.constants``.

    ``setenv`` / ``setattr_`` are ``os.environ.__setitem__`` / ``setattr`` for a whole session,
    or pytest's ``monkeypatch.setenv`` / ``monkeypatch.setattr`` to undo them after a test.
    """
    for name, value in settings.items():
        setenv(name, value)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return  # huggingface_hub will read the environment when it is imported
    endpoint = settings["HF_ENDPOINT"].rstrip("/")
    home = settings["HF_HOME"]
    setattr_(constants, "ENDPOINT", endpoint)
    setattr_(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    setattr_(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname}))
    setattr_(constants, "HF_HOME", home)
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        setattr_(constants, name, settings["HF_HUB_CACHE"])
    setattr_(constants, "HF_XET_CACHE", settings["HF_XET_CACHE"])
    setattr_(constants, "HF_ASSETS_CACHE", settings["HF_ASSETS_CACHE"])
    setattr_(constants, "HF_TOKEN_PATH", settings["HF_TOKEN_PATH"])
    setattr_(constants, "HF_STORED_TOKENS_PATH", os.path.join(home, "stored_tokens"))
    setattr_(constants, "HF_HUB_OFFLINE", settings["HF_HUB_OFFLINE"] == "1")
    setattr_(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    setattr_(constants, "HF_HUB_DISABLE_UPDATE_CHECK", True)
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None:  # the module-level HfApi behind huggingface_hub.create_repo & co.
        setattr_(hf_api.api, "endpoint", endpoint)
