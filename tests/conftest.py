"""Suite-wide isolation from the real Hugging Face Hub and the user's caches.

Before any test module imports timm (and with it ``huggingface_hub``), point the Hub client
at a throw-away cache and at an endpoint where nothing listens, so that no test can reach
the internet or read/write ``~/.cache/huggingface``. Tests that need a Hub use the
``local_hub`` fixture (tests/hub_fixtures.py), which serves one on 127.0.0.1.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hub_settings import apply_hub_environment, hub_environment

_SANDBOX = Path(tempfile.mkdtemp(prefix="dynsnip-tests-hf-"))
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)
# Port 9 (discard) on the loopback: connections are refused at once, nothing leaves the machine.
apply_hub_environment(hub_environment("http://127.0.0.1:9", _SANDBOX), os.environ.__setitem__, setattr)


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The suite's models are tiny: on 2 shared cores a second OpenMP thread mostly waits at
    barriers between small kernels (measured 10-20x slower under load), so tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
