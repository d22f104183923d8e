"""What makes the SIMs what they are: the equations, and what mixes across frames, snippets, clips."""
from __future__ import annotations

import pytest
import torch

from dynsnip import InterSIM, IntraSIM
from reference_dil import inter_sim_reference, intra_sim_reference

T = 4


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (incl. Conv_U), so that no path is silently an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for b in module.buffers():
            if b.dtype.is_floating_point:
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module.eval()


def frames(n_clips: int, u: int, c: int = 16, hw: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n_clips * u * T, c, hw, hw, generator=torch.Generator().manual_seed(seed))


def changed_frames(m, x, i, **kw) -> list[int]:
    """Indices of output frames that change when input frame ``i`` changes."""
    with torch.no_grad():
        y = m(x, **kw)
        x2 = x.clone()
        x2[i] += torch.randn_like(x2[i])
        d = (m(x2, **kw) - y).abs().flatten(1).amax(1)
    return d.gt(1e-6).nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"bidirectional": False},
        {"coord_attention": False},
        {"learnable_kernel": False},
        {"edge": "frame"},
        {"reduction": 4, "kernel_size": 5, "gamma": 3},
    ],
)
def test_intra_sim_matches_the_equations(options):
    sim = randomise(IntraSIM(16, snippet_len=T, **options))
    x = frames(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(sim(x), intra_sim_reference(sim, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"bidirectional": False}, {"edge": "frame"}, {"snippet_kernel_size": 5}])
def test_inter_sim_matches_the_equations(options):
    sim = randomise(InterSIM(16, snippet_len=T, **options))
    x = frames(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(sim(x, num_snippets=5), inter_sim_reference(sim, x, 5), rtol=1e-4, atol=1e-5)


def test_intra_sim_first_half_passes_through_unchanged():
    sim = randomise(IntraSIM(16, snippet_len=T))
    x = frames(1, 2)
    y = sim(x)
    assert torch.equal(y[:, :8], x[:, :8])
    assert not torch.allclose(y[:, 8:], x[:, 8:])
    # odd channel counts: the first C // 2 pass through
    sim = randomise(IntraSIM(7, snippet_len=T))
    x = torch.randn(8, 7, 5, 5)
    assert torch.equal(sim(x)[:, :3], x[:, :3])


def test_intra_sim_never_mixes_frames_across_snippet_borders():
    sim = randomise(IntraSIM(16, snippet_len=T))
    x = frames(2, 3)  # 24 frames = 6 snippets
    for i in (0, 3, 5, 12, 23):
        snippet = i // T
        assert changed_frames(sim, x, i) == list(range(snippet * T, snippet * T + T))


def test_intra_sim_bidirectional_path_looks_both_ways():
    # no coordinate convs and no kernel: the attention at t sees exactly t and its neighbours
    base = dict(coord_attention=False, learnable_kernel=False, diff_kernel_size=1)
    fwd = randomise(IntraSIM(16, snippet_len=T, bidirectional=False, **base))
    both = randomise(IntraSIM(16, snippet_len=T, bidirectional=True, **base))
    x = frames(1, 1)
    # frame 1 is the successor of frame 0 only (forward difference F_t - Conv(F_{t+1}))
    assert changed_frames(fwd, x, 1) == [0, 1]
    assert changed_frames(both, x, 1) == [0, 1, 2]


def test_intra_sim_edge_difference_is_zero_at_snippet_border():
    sim = randomise(IntraSIM(4, snippet_len=T, reduction=1, bidirectional=False,
                             coord_attention=False, learnable_kernel=False))
    x = frames(1, 2, c=4)
    with torch.no_grad():
        y = sim(x)
        const = torch.sigmoid(sim.sma.recover.bias)[None, :, None, None]
    last = x[T - 1:T, 2:]  # last frame of snippet 0: no successor -> D = 0 -> atten = σ(bias)
    torch.testing.assert_close(y[T - 1:T, 2:], last * const + last)


def test_learnable_kernel_is_a_per_sample_per_channel_distribution():
    sim = randomise(IntraSIM(16, snippet_len=T, kernel_size=3))
    x = frames(1, 2)
    k = sim.kernel(x[:, 8:])
    assert k.shape == (2, 8, 3)
    torch.testing.assert_close(k.sum(-1), torch.ones(2, 8))
    assert not torch.allclose(k[0], k[1])  # depends on the snippet's content


def test_inter_sim_mixes_snippets_of_a_clip_but_never_clips():
    sim = randomise(InterSIM(16, snippet_len=T))
    u = 3
    x = frames(2, u)  # clip 0: frames 0-11, clip 1: 12-23
    changed = changed_frames(sim, x, 5, num_snippets=u)  # frame 1 of snippet 1 of clip 0
    assert set(changed) <= set(range(12))  # never reaches clip 1
    snippets = {i // T for i in changed}
    assert snippets == {0, 1, 2}  # reaches the neighbouring snippets


def test_inter_sim_conv_u_starts_as_identity():
    sim = InterSIM(16, snippet_len=T).eval()
    x = frames(1, 3)
    with torch.no_grad():
        y = sim(x, num_snippets=3)
        pooled = x.mean((2, 3)).reshape(1, 3, T, 16).permute(0, 3, 1, 2)
        a = torch.sigmoid(sim.branch1(pooled)) * sim.sma(pooled)
    expected = x * (1 + a[0].permute(1, 2, 0).reshape(3 * T, 16, 1, 1))
    torch.testing.assert_close(y, expected)


def test_inter_sim_parameters_do_not_depend_on_u():
    sim = randomise(InterSIM(16, snippet_len=T))
    shapes = {k: v.shape for k, v in sim.state_dict().items()}
    for u in (1, 2, 4, 8):
        x = frames(1, u)
        with torch.no_grad():
            torch.testing.assert_close(sim(x, num_snippets=u), inter_sim_reference(sim, x, u), rtol=1e-4, atol=1e-5)
    assert shapes == {k: v.shape for k, v in sim.state_dict().items()}


def test_bad_layouts_are_named():
    intra, inter = IntraSIM(16, snippet_len=T), InterSIM(16, snippet_len=T)
    with pytest.raises(ValueError, match=r"10 frames .* snippet_len T=4"):
        intra(torch.randn(10, 16, 4, 4))
    with pytest.raises(ValueError, match=r"5-d tensor"):
        intra(torch.randn(1, 16, 8, 4, 4))
    with pytest.raises(TypeError, match="num_snippets=U"):
        inter(torch.randn(8, 16, 4, 4))
    with pytest.raises(ValueError, match=r"16 frames .* U=3 x snippet_len T=4"):
        inter(torch.randn(16, 16, 4, 4), num_snippets=3)
    with pytest.raises(ValueError, match="edge"):
        IntraSIM(16, edge="wrap")


def test_difference_paths_do_not_overflow_under_fp16_autocast():
    """6e4-scale activations in adjacent frames: their difference overflows fp16."""
    sim = IntraSIM(4, snippet_len=T, reduction=1, bidirectional=False,
                   coord_attention=False, learnable_kernel=False).eval()
    with torch.no_grad():
        sim.sma.squeeze.weight.fill_(0.5)  # f = x_a + x_b over the 2 motion channels... halved
        sim.sma.diff_conv.weight.zero_()
        sim.sma.diff_conv.weight[:, :, 1, 1] = 1.0
        sim.sma.recover.weight.zero_()
        sim.sma.recover.bias.fill_(-20.0)
    x = torch.zeros(T, 4, 3, 3)
    x[0::2, 2:] = 4.0e4
    x[1::2, 2:] = -4.0e4  # f_t - f_{t+1} = ±8e4 > fp16 max (65504)
    for fp32 in (True, False):
        sim.sma.fp32_differences = fp32
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
            y = sim(x)
        if fp32:
            assert torch.isfinite(y).all()
            torch.testing.assert_close(y.float(), x, rtol=1e-3, atol=1.0)
        else:  # the check above could fail: without the float32 region the path overflows
            assert not torch.isfinite(y).all()
