"""benchmarks/temporal_sensitivity.py: its construction and its models (the runs themselves are
measurements, see docs/temporal_sensitivity.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import temporal_sensitivity as ts  # noqa: E402


def test_fakes_hold_the_same_parameters_in_another_order():
    """Only the order of the frames tells the classes apart: a fake clip's parameters are a
    permutation of a real clip's (same rng draw), so no bag-of-frames statistic differs."""
    real = ts.parameter_paths(16, 4, None, np.random.default_rng(3))
    fake = ts.parameter_paths(16, 4, "shuffle", np.random.default_rng(3))
    assert not np.allclose(real, fake)
    assert np.allclose(np.sort(real, axis=0), np.sort(fake, axis=0))
    # the real path is smooth, the shuffled one jumps
    assert np.abs(np.diff(real, axis=0)).mean() < np.abs(np.diff(fake, axis=0)).mean()


def test_geometric_rendering_moves_only_the_face_region():
    # the same frame twice (its own generator: the result must not depend on the tests run before)
    crops = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).expand(2, -1, -1, -1).contiguous()
    out = ts.render("geometric", crops, np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), shift=3.0)
    corner = (slice(None), slice(None), slice(0, 4), slice(0, 4))  # outside the feathered ellipse
    # unchanged up to the 8-bit rounding: the identity warp's float error can carry a value across a
    # rounding boundary (one level, 1/255; it did for 41% of random frames), a moved face differs by far more
    level = dict(rtol=0, atol=1 / 255 + 1e-6)
    torch.testing.assert_close(out[corner], (crops[corner] * 255).round() / 255, **level)
    torch.testing.assert_close(out[1], (crops[1] * 255).round() / 255, **level)  # zero parameters: unchanged
    assert (out[0] - out[1]).abs()[:, 24:40, 24:40].mean() > 0.01  # the face moved in frame 0


@pytest.mark.parametrize("replace", [False, True])
def test_difference_references_add_or_replace(replace):
    ref = ts.DifferenceReference(8, snippet_len=4, replace=replace)
    x = torch.randn(2 * 4, 8, 3, 3)
    y = ref(x).unflatten(0, (2, 4))
    v = x.unflatten(0, (2, 4))
    back = v[:, 1:, :2] - v[:, :-1, :2]
    expected = back if replace else v[:, 1:, :2] + back
    torch.testing.assert_close(y[:, 1:, :2], expected)
    torch.testing.assert_close(y[:, 0, :2], torch.zeros_like(y[:, 0, :2]) if replace else v[:, 0, :2])
    torch.testing.assert_close(y[:, :, 4:], v[:, :, 4:])  # the other half passes unchanged


def test_every_variant_builds_and_runs():
    width = dict(channels=(8, 16, 32, 64), stem_width=8)
    x = torch.randn(1, 3, 8, 32, 32)
    for name, spec in ts.VARIANTS.items():
        model = ts.build_model(name, spec, width).eval()
        with torch.no_grad():
            assert torch.isfinite(model(x)).all(), name
    zero = ts.build_model("paper_zero_recover", ts.VARIANTS["paper_zero_recover"], width)
    assert all(m.recover_h.weight.abs().max() == 0 for m in zero.modules() if type(m).__name__ == "IntraSMA")
    assert ts.build_model("paper", ts.VARIANTS["paper"], width).layer1[0].sim.sma.motion_channels == 0
    assert ts.build_model("dil", ts.VARIANTS["dil"], width).layer1[0].sim.sma.motion_channels > 0
