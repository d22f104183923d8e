"""Fixtures for tests that talk to a Hugging Face Hub: a :class:`LocalHub` per test."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from hub_settings import apply_hub_environment, hub_environment
from local_hub import LocalHub

__all__ = ["local_hub", "go_offline"]


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A fresh hub on 127.0.0.1 with an empty cache; ``huggingface_hub`` points at it for the test."""
    with LocalHub() as hub:
        apply_hub_environment(
            hub_environment(hub.endpoint, tmp_path / "hf-home"), monkeypatch.setenv, monkeypatch.setattr
        )
        yield hub


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the running process to ``HF_HUB_OFFLINE=1`` for the rest of the test."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
