"""Triton kernels checked on the CPU: a test file's checks run under Triton's interpreter in one subprocess.

The interpreter has to be chosen before triton is imported (``triton.jit`` decides when it decorates,
and triton's own ``tl.zeros``/``tl.sigmoid`` are decorated at import), so a test file that checks a
kernel collects its checks in a dict, runs itself as a script with ``TRITON_INTERPRET=1``
(:func:`interpreter_report`), and the script prints :func:`run_checks`'s JSON report, which the
file's tests read one check at a time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_checks(checks: dict[str, Callable[[], None]]) -> dict[str, str]:
    """Every check: ``"ok"`` or the end of its traceback (one torch thread, as the suite runs)."""
    torch.set_num_threads(1)
    report = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except Exception:  # reported to the parent test, which fails with it
            report[name] = traceback.format_exc()[-3000:]
    return report


def interpreter_report(test_file: str) -> dict[str, str]:
    """Runs ``test_file`` as a script under ``TRITON_INTERPRET=1`` (one process, all its checks) and
    returns the report its last line prints. Skips where triton is not installed (it is in the
    ``test`` extra on Linux x86-64)."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, test_file], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"interpreter checks crashed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
