"""benchmarks/gpu_profile.py (where a DIL step's GPU time goes) and its place in gpu_report.py's section,
checked on the CPU, where the ops' own CPU time stands in for the kernels' time."""
from __future__ import annotations

import json

import pytest

from project_scripts import load_script


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "gpu_profile.json"
    profile = load_script("benchmarks/gpu_profile.py", beside_on_path=True)
    report = profile.main(["--quick", "--json", str(out)])
    return report, out


def test_the_sims_ranges_hold_their_ops_and_only_theirs(profiled):
    report, out = profiled
    assert json.loads(out.read_text())["models"].keys() == {"dil_resnet18", "resnet18"}
    for mode in ("inference", "training"):
        dil, base = report["models"]["dil_resnet18"][mode], report["models"]["resnet18"][mode]
        assert dil["ranges_ms"]["IntraSIM"] > 0 and dil["ranges_ms"]["InterSIM"] > 0
        assert base["ranges_ms"] == {"IntraSIM": 0.0, "InterSIM": 0.0}  # no SIM, nothing ranged
        assert dil["launches"] > base["launches"] > 0
        # the SIMs' forwards and backwards are part of the step, never more than it
        assert sum(dil["ranges_ms"].values()) + sum(dil["backward_ms"].values()) < dil["device_ms"] \
            <= dil["wall_ms"] * 1.05
        assert base["backward_ms"] == {"IntraSIM": 0.0, "InterSIM": 0.0}
        if mode == "inference":  # no autograd: no backward
            assert dil["backward_ms"] == {"IntraSIM": 0.0, "InterSIM": 0.0}
        else:  # both SIMs' backward found, through the sequence numbers of their forward ops
            assert dil["backward_ms"]["IntraSIM"] > 0 and dil["backward_ms"]["InterSIM"] > 0
    sim_ops = [o["op"] for o in report["models"]["dil_resnet18"]["inference"]["top_sim_ops"]]
    assert any(op.startswith("aten::conv3d [[") for op in sim_ops)  # the volume path's convs, with shapes
    assert not any("max_pool2d" in op for op in sim_ops)  # the stem's pool is not a SIM's


def test_gpu_report_puts_the_profile_into_the_section(profiled, tmp_path):
    _, out = profiled
    report = load_script("benchmarks/gpu_report.py")
    (tmp_path / "gpu_profile.json").write_text(out.read_text())
    doc = tmp_path / "performance.md"
    doc.write_text(f"{report.BEGIN}\n{report.END}\n")
    report.main(["--results", str(tmp_path), "--doc", str(doc)])
    text = doc.read_text()
    assert "Not measured yet" not in text  # a profile alone is a measurement
    rows = [line for line in text.splitlines() if line.startswith("| dil_resnet18 | ")]
    assert [r.split(" | ")[1] for r in rows] == ["inference", "training"]
    assert "Top kernels, dil_resnet18 inference:" in text
