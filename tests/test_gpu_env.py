"""benchmarks/gpu_env.sh: the environment the GPU scripts set up on a bare, offline GPU machine.

A loan of a GPU machine is short and happens once; the scripts must not lose it to the machine's
environment: no ``python`` (only ``python3``), dynsnip not installed, PyAV only as a carried wheel.
These tests build such a machine out of fake interpreters and a hand-made wheel."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from project_scripts import ROOT

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _checkout(tmp_path: Path) -> Path:
    """A folder laid out as the checkout's root, holding the script under test."""
    root = tmp_path / "checkout"
    (root / "benchmarks").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "gpu_env.sh", root / "benchmarks" / "gpu_env.sh")
    return root


def _wrapper(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _fake_bin(tmp_path: Path, python_imports_torch: bool) -> Path:
    """A PATH folder whose ``python`` does or does not import torch, and whose ``python3`` is this
    test's interpreter (which does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    this = f'exec "{sys.executable}" "$@"'  # a wrapper, not a link: a link would lose a virtualenv
    # an interpreter without torch, as a bare image's `python` (or Python 2) would be
    _wrapper(bin_dir / "python", this if python_imports_torch else "exit 1")
    _wrapper(bin_dir / "python3", this)
    return bin_dir


def _source(root: Path, path: str, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess:
    """Source gpu_env.sh in ``root`` with ``PATH=path``, then print PY and PYTHONPATH."""
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **dict(extra_env)}
    script = '. benchmarks/gpu_env.sh && printf "%s\\n%s\\n" "$PY" "$PYTHONPATH"'
    return subprocess.run([BASH, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def _wheel(folder: Path, name: str, version: str, module_source: str) -> Path:
    """A minimal pure-Python wheel of distribution ``name`` holding module ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def record_line(file: str, text: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        return f"{file},sha256={digest},{len(text.encode())}"

    record = "\n".join(record_line(f, t) for f, t in files.items()) + f"\n{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(file, text)
    return path


def test_picks_the_python_that_imports_torch_and_puts_the_checkout_first(tmp_path):
    root = _checkout(tmp_path)
    bin_dir = _fake_bin(tmp_path, python_imports_torch=False)
    done = _source(root, f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    py, pythonpath = done.stdout.splitlines()
    assert py == "python3"  # `python` exists but has no torch
    assert pythonpath.split(":")[0] == str(root)  # this checkout's dynsnip, installed or not
    assert "torch" in done.stderr  # says which interpreter and torch it runs


def test_prefers_python_when_it_imports_torch_and_honours_PYTHON(tmp_path):
    root = _checkout(tmp_path)
    bin_dir = _fake_bin(tmp_path, python_imports_torch=True)
    assert _source(root, f"{bin_dir}:/usr/bin:/bin").stdout.splitlines()[0] == "python"
    chosen = _source(root, f"{bin_dir}:/usr/bin:/bin", ("PYTHON", sys.executable))
    assert chosen.stdout.splitlines()[0] == sys.executable


def test_stops_with_a_reason_when_no_python_imports_torch(tmp_path):
    root = _checkout(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3"):
        _wrapper(bin_dir / name, "exit 1")
    done = _source(root, f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 3
    assert "imports torch" in done.stderr and "PYTHON" in done.stderr


def test_installs_carried_wheels_of_missing_packages_only(tmp_path):
    root = _checkout(tmp_path)
    bin_dir = _fake_bin(tmp_path, python_imports_torch=True)
    _wheel(root / ".whl", "dynsnip_carried_probe", "1.0", "VALUE = 41\n")
    # a wheel of a package the interpreter has: left alone (its own stays in use), or pip would shadow it
    _wheel(root / ".whl", "pytest", "0.0.1", "raise ImportError('the carried copy must not be used')\n")
    target = tmp_path / "site"
    done = _source(root, f"{bin_dir}:/usr/bin:/bin", ("WHEELS_TARGET", str(target)))
    assert done.returncode == 0, done.stderr
    py, pythonpath = done.stdout.splitlines()
    assert pythonpath.split(":") == [str(root), str(target)]
    assert (target / "dynsnip_carried_probe.py").is_file()
    assert not (target / "pytest.py").exists()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": pythonpath}
    probe = subprocess.run([py, "-c", "import dynsnip_carried_probe as p, pytest; print(p.VALUE + 1)"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.stdout.strip() == "42", probe.stderr


def test_a_wheel_that_does_not_install_stops_the_script(tmp_path):
    root = _checkout(tmp_path)
    bin_dir = _fake_bin(tmp_path, python_imports_torch=True)
    (root / ".whl").mkdir()
    (root / ".whl" / "dynsnip_broken_probe-1.0-py3-none-any.whl").write_bytes(b"not a zip file")
    done = _source(root, f"{bin_dir}:/usr/bin:/bin", ("WHEELS_TARGET", str(tmp_path / "site")))
    assert done.returncode == 3
    assert "dynsnip_broken_probe" in done.stderr and "device_wheels.sh" in done.stderr
