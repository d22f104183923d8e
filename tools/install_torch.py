"""Install the torch and torchvision that dynsnip is tested with, in the build this machine needs.

The README's first command. ``pip install torch`` on Linux takes the CUDA build from PyPI:
about 3 GB of NVIDIA libraries that a machine without an NVIDIA GPU never uses. This script
runs ``python -m pip install torch==TORCH torchvision==TORCHVISION`` with

* PyTorch's CPU-only index (``--index-url`` :data:`CPU_INDEX`, a few hundred MB) on Linux
  without an NVIDIA driver, when that index answers;
* no index option (PyPI's CUDA build, or whatever pip is configured with) with an NVIDIA
  driver, on macOS / Windows (whose PyPI wheels are CPU-only), and when PyTorch's index
  cannot be reached (a machine whose pip reads a mirror: there pip's own configuration
  decides, as for ``.ci/run``, which installs the same versions).

``--cpu`` / ``--cuda`` choose the build; ``--dry-run`` prints the pip command and why,
without running it. Standard library only: it runs before torch is installed.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

TORCH = "2.14.1"
TORCHVISION = "0.29.1"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 10.0


def has_nvidia_driver() -> bool:
    """An NVIDIA driver is installed (``nvidia-smi`` on PATH, or the kernel module's version file)."""
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia/version")


def index_answers(url: str = CPU_INDEX, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url`` answers, else why not (one line)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/torch/", method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        return None if err.code < 500 else f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err))


def choose(build: str = "auto", system: str | None = None, nvidia: bool | None = None,
           probe=index_answers) -> tuple[list[str], str]:
    """``(pip arguments, why)`` for ``build`` ``"auto"``, ``"cpu"`` or ``"cuda"``."""
    packages = ["install", f"torch=={TORCH}", f"torchvision=={TORCHVISION}"]
    system = system or platform.system()
    cpu_index = packages + ["--index-url", CPU_INDEX]
    if build == "cpu":
        return cpu_index, "--cpu: torch's CPU build from PyTorch's index"
    if build == "cuda":
        return packages, "--cuda: torch from PyPI (on Linux its CUDA build)"
    if system != "Linux":
        return packages, f"{system}: PyPI's torch wheels are CPU-only here already"
    if has_nvidia_driver() if nvidia is None else nvidia:
        return packages, "an NVIDIA driver is installed: torch's CUDA build from PyPI"
    unreachable = probe()
    if unreachable:
        return packages, (f"no NVIDIA driver, but PyTorch's CPU index {CPU_INDEX} cannot be reached ({unreachable}): "
                          "torch from the package index pip is configured with")
    return cpu_index, "no NVIDIA driver: torch's CPU build from PyTorch's index (--cuda for the CUDA build)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    build = parser.add_mutually_exclusive_group()
    build.add_argument("--cpu", dest="build", action="store_const", const="cpu", help="torch's CPU build")
    build.add_argument("--cuda", dest="build", action="store_const", const="cuda", help="torch from PyPI (CUDA on Linux)")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command, do not run it")
    args = parser.parse_args(argv)
    pip_args, why = choose(args.build or "auto")
    command = [sys.executable, "-m", "pip", *pip_args]
    print(f"install_torch: {why}\ninstall_torch: {' '.join(command)}", flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
