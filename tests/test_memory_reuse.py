"""dynsnip.memory_reuse: freed memory stays in the process (no page faults on the next allocation),
only where glibc applies and the user has not chosen otherwise; the command line sets it."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from dynsnip import memory_reuse

# allocate, touch and free a 64 MiB block (above glibc's largest dynamic mmap threshold, 32 MiB) ten times;
# print the minor page faults of the last nine
PROBE = r"""
import json, resource, sys
import numpy as np
from dynsnip.memory_reuse import keep_freed_memory
state = keep_freed_memory() if sys.argv[1] == "keep" else "not called"
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(64 * 2**20, dtype=np.uint8)
    block.fill(1)
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(dict(state=state, faults=sum(faults[1:]))))
"""


def probe(mode: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != memory_reuse.OPT_OUT}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**environment, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc only")


@glibc
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    # a fault maps one page, or one 2 MiB huge page where the kernel uses them for large blocks
    huge_pages = 64 * 2**20 // (2 * 2**20)
    default = probe("default")
    kept = probe("keep")
    assert default["faults"] >= 9 * huge_pages  # glibc's default: every block mapped and faulted in anew
    assert kept["state"] == "kept" and kept["faults"] < huge_pages  # reused: at most a few stray pages
    opted_out = probe("keep", DYNSNIP_KEEP_FREED_MEMORY="0")
    assert opted_out["state"] == "left alone: DYNSNIP_KEEP_FREED_MEMORY=0"
    assert opted_out["faults"] >= 9 * huge_pages


@pytest.mark.parametrize("env, reason", [
    ({"DYNSNIP_KEEP_FREED_MEMORY": "off"}, "DYNSNIP_KEEP_FREED_MEMORY=off"),
    ({"MALLOC_TRIM_THRESHOLD_": "100000"}, "glibc's malloc is set in the environment (MALLOC_TRIM_THRESHOLD_)"),
    ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=100000"}, "set in the environment (GLIBC_TUNABLES)"),
    ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "jemalloc is preloaded (LD_PRELOAD)"),
])
def test_a_choice_of_the_user_is_left_alone(env, reason, monkeypatch):
    for name in (*memory_reuse.GLIBC_MALLOC_ENVIRONMENT, "GLIBC_TUNABLES", "LD_PRELOAD", memory_reuse.OPT_OUT):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    called = []
    monkeypatch.setattr(memory_reuse.ctypes, "CDLL", lambda *a, **k: called.append(a))
    state = memory_reuse._apply()
    assert state.startswith("left alone: ") and reason in state
    assert not called  # mallopt never reached


def test_not_glibc_is_left_alone(monkeypatch):
    monkeypatch.delenv(memory_reuse.OPT_OUT, raising=False)
    for name in (*memory_reuse.GLIBC_MALLOC_ENVIRONMENT, "GLIBC_TUNABLES", "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(memory_reuse.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(memory_reuse.platform, "libc_ver", lambda: ("", ""))
    assert memory_reuse._apply().startswith("left alone: not glibc (Darwin")


def test_the_command_line_keeps_freed_memory_before_any_command(monkeypatch, capsys):
    import dynsnip.memory_reuse
    from dynsnip.cli import main

    calls = []
    monkeypatch.setattr(dynsnip.memory_reuse, "keep_freed_memory", lambda: calls.append(1) or "kept")
    assert main([]) == 2  # no command: the help, a usage error
    assert calls == [1]
