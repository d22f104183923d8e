"""What makes the SIMs what they are: the equations, and what mixes across frames, snippets, clips.

Inputs use non-square maps (H=5, W=7) and enough channels that every compressed path has
several channels (Intra-SMA: C/2/r = 3 at the default r=16), so that swapped H/W or channel
axes would not go unnoticed.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from dynsnip import InterSIM, IntraSIM
from reference_dil import inter_sim_reference, intra_sim_reference

T = 4
C = 96  # Intra-SIM: C/2 = 48 motion channels, 3 after r=16; Inter-SMA: 24 after C/4
H, W = 5, 7


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


def frames(n_clips: int, u: int, c: int = C, h: int = H, w: int = W, seed: int = 1) -> torch.Tensor:
    return torch.randn(n_clips * u * T, c, h, w, generator=torch.Generator().manual_seed(seed))


def changed_frames(m, x, i, **kw) -> list[int]:
    """Indices of output frames that change when input frame ``i`` changes."""
    with torch.no_grad():
        y = m(x, **kw)
        x2 = x.clone()
        x2[i] += torch.randn_like(x2[i])
        d = (m(x2, **kw) - y).abs().flatten(1).amax(1)
    return d.gt(1e-6).nonzero().flatten().tolist()


def frames_outside_group(m, x, group: int, probes, **kw) -> dict[int, list[int]]:
    """For each probed input frame, the output frames it reaches outside its own group of
    ``group`` consecutive frames (a snippet: ``T``; a clip: ``U*T``). Empty: no leak."""
    leaks = {}
    for i in probes:
        outside = [j for j in changed_frames(m, x, i, **kw) if j // group != i // group]
        if outside:
            leaks[i] = outside
    return leaks


class Leaky(nn.Module):
    """A deliberately broken SIM: ``sim``'s output plus a little of the frame ``shift`` places
    earlier in the folded batch (across snippet borders for shift 1, across clips for U*T)."""

    def __init__(self, sim: nn.Module, shift: int) -> None:
        super().__init__()
        self.sim, self.shift = sim, shift

    def forward(self, x, num_snippets=None):
        y = self.sim(x) if num_snippets is None else self.sim(x, num_snippets=num_snippets)
        return y + 0.1 * torch.roll(x, self.shift, dims=0)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"bidirectional": False},
        {"coord_attention": False},
        {"learnable_kernel": False},
        {"edge": "frame"},
        {"reduction": 8, "kernel_size": 5, "gamma": 3},
        {"share_directions": True},
        {"share_directions": True, "coord_attention": False},
        {"bidirectional": False, "coord_attention": False, "learnable_kernel": False},  # Table 5, first row
        {"motion_fraction": 0.0},  # the paper's Eq. 5 without the motion channels
        {"motion_source": "own"}, {"motion_source": "compressed"}, {"motion_source": "own", "bidirectional": False},
        {"motion_fraction": 0.25, "motion_reduction": 4, "edge": "frame"},
    ],
)
def test_intra_sim_matches_the_equations(options):
    sim = randomise(IntraSIM(C, snippet_len=T, **options))
    assert sim.sma.hidden_channels >= 3
    x = frames(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(sim(x), intra_sim_reference(sim, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [
    {}, {"bidirectional": False}, {"edge": "frame"}, {"snippet_kernel_size": 5}, {"share_directions": True},
    {"conv_u": "dense"}, {"conv_u": "dense", "snippet_kernel_size": 5},
])
def test_inter_sim_matches_the_equations(options):
    """Against the equations in float64: the module composes convs (Eq. 10's 1x1 into Eq. 8-9's), which
    rounds differently in float32, so the tolerance is float32's on outputs of this size (up to ~60)."""
    sim = randomise(InterSIM(C, snippet_len=T, **options))
    x = frames(2, 5)
    with torch.no_grad():
        expected = inter_sim_reference(copy.deepcopy(sim).double(), x.double(), 5)
        torch.testing.assert_close(sim(x, num_snippets=5).double(), expected, rtol=1e-4,
                                   atol=1e-6 * float(expected.abs().max()))


def test_intra_sim_first_half_passes_through_unchanged():
    sim = randomise(IntraSIM(C, snippet_len=T))
    x = frames(1, 2)
    y = sim(x)
    assert torch.equal(y[:, :C // 2], x[:, :C // 2])
    assert not torch.allclose(y[:, C // 2:], x[:, C // 2:])
    # odd channel counts: the first C // 2 pass through
    sim = randomise(IntraSIM(7, snippet_len=T))
    x = torch.randn(8, 7, 5, 6)
    assert torch.equal(sim(x)[:, :3], x[:, :3])


@pytest.mark.parametrize("options", [{}, {"share_directions": True}, {"edge": "frame"}])
def test_intra_sim_never_mixes_frames_across_snippet_borders(options):
    sim = randomise(IntraSIM(C, snippet_len=T, **options))
    x = frames(2, 3)  # 24 frames = 6 snippets
    for i in (0, 3, 5, 12, 23):
        snippet = i // T
        assert changed_frames(sim, x, i) == list(range(snippet * T, snippet * T + T))
    assert frames_outside_group(sim, x, T, range(len(x))) == {}


def test_inter_sim_mixes_snippets_of_a_clip_but_never_clips():
    sim = randomise(InterSIM(C, snippet_len=T))
    u = 3
    x = frames(2, u)  # clip 0: frames 0-11, clip 1: 12-23
    changed = changed_frames(sim, x, 5, num_snippets=u)  # frame 1 of snippet 1 of clip 0
    assert set(changed) <= set(range(12))  # never reaches clip 1
    snippets = {i // T for i in changed}
    assert snippets == {0, 1, 2}  # reaches the neighbouring snippets
    assert frames_outside_group(sim, x, u * T, range(len(x)), num_snippets=u) == {}


def test_the_isolation_checks_catch_a_leaky_sim():
    """The two checks above bite: a SIM that lets a little of the previous frame (or clip) in
    is caught by the same property checks."""
    u = 3
    x = frames(2, u)
    leaky_intra = Leaky(randomise(IntraSIM(C, snippet_len=T)), shift=1)
    leaks = frames_outside_group(leaky_intra, x, T, range(len(x)))
    assert {i for i in leaks} == {i for i in range(len(x)) if i % T == T - 1}  # last frames leak into the next snippet
    leaky_inter = Leaky(randomise(InterSIM(C, snippet_len=T)), shift=u * T)
    leaks = frames_outside_group(leaky_inter, x, u * T, range(len(x)), num_snippets=u)
    assert set(leaks) == set(range(len(x)))  # every frame reaches the other clip


def test_intra_sim_bidirectional_path_looks_both_ways():
    # no coordinate convs and no kernel: the attention at t sees exactly t and its neighbours
    base = dict(coord_attention=False, learnable_kernel=False, diff_kernel_size=1)
    fwd = randomise(IntraSIM(C, snippet_len=T, bidirectional=False, **base))
    both = randomise(IntraSIM(C, snippet_len=T, bidirectional=True, **base))
    x = frames(1, 1)
    # frame 1 is the successor of frame 0 only (forward difference F_t - Conv(F_{t+1}))
    assert changed_frames(fwd, x, 1) == [0, 1]
    assert changed_frames(both, x, 1) == [0, 1, 2]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("cls", [IntraSIM, InterSIM])
def test_each_direction_has_its_own_weights_by_default(cls):
    default, shared, one_way = cls(C), cls(C, share_directions=True), cls(C, bidirectional=False)
    assert n_params(one_way) < n_params(default)
    assert n_params(shared) == n_params(one_way)  # sharing adds no parameter of its own
    names = {n for n, _ in default.named_parameters()} - {n for n, _ in shared.named_parameters()}
    expected = {"sma.frame_conv_backward.weight"} if cls is InterSIM else {
        "sma.diff_conv_backward.weight", "sma.ht_conv_backward.weight", "sma.ht_conv_backward.bias",
        "sma.tw_conv_backward.weight", "sma.tw_conv_backward.bias", "sma.motion_diff_conv_backward.weight"}
    assert names == expected


@pytest.mark.parametrize("share", [True, False])
def test_shared_directions_reduce_to_one_difference_against_the_averaged_neighbours(share):
    """Shared weights: everything before the sigmoid is linear, so moving the two neighbours of
    frame 1 in opposite directions (their mean stays) leaves frame 1's output unchanged.
    Per-direction weights (the default) see the change."""
    sim = randomise(IntraSIM(C, snippet_len=T, share_directions=share, coord_attention=False,
                             learnable_kernel=False))
    x = frames(1, 1)
    delta = torch.randn_like(x[0])
    x2 = x.clone()
    x2[0] -= delta
    x2[2] += delta
    with torch.no_grad():
        moved = (sim(x2)[1] - sim(x)[1]).abs().max()
    if share:  # (the motion channels too: their shared Eq. 1 conv sees the mean of the neighbours)
        assert moved < 1e-4
    else:
        assert moved > 1e-2


@pytest.mark.parametrize("cls, kw", [(IntraSIM, {}), (IntraSIM, {"coord_attention": False}), (InterSIM, {})])
def test_per_direction_weights_that_are_equal_compute_the_shared_module(cls, kw):
    """The wiring of the two paths: with the backward convs set to the forward ones the default
    module is the shared module; with its own random backward convs it is not."""
    shared = randomise(cls(C, share_directions=True, **kw), seed=3)
    untied = randomise(cls(C, **kw), seed=4)
    x = frames(1, 3)
    call = (lambda m: m(x, num_snippets=3)) if cls is InterSIM else (lambda m: m(x))
    with torch.no_grad():
        different = call(untied)
        untied.load_state_dict(shared.state_dict())  # no *_backward keys: copied from the forward path
        torch.testing.assert_close(call(untied), call(shared), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(different, call(shared), atol=1e-3)


@pytest.mark.parametrize("cls", [IntraSIM, InterSIM])
def test_a_checkpoint_with_only_some_backward_tensors_is_not_patched(cls):
    shared, untied = cls(C, share_directions=True), cls(C)
    sd = dict(shared.state_dict())
    backward = [k for k in untied.state_dict() if "_backward" in k]
    sd[backward[0]] = untied.state_dict()[backward[0]]
    if len(backward) > 1:
        with pytest.raises(RuntimeError, match="Missing key"):
            untied.load_state_dict(sd)
    else:  # one backward tensor given: used as is, nothing copied over it
        untied.load_state_dict(sd)
        assert torch.equal(untied.state_dict()[backward[0]], sd[backward[0]])


def test_intra_sim_edge_difference_is_zero_at_snippet_border():
    sim = randomise(IntraSIM(8, snippet_len=T, reduction=1, bidirectional=False,
                             coord_attention=False, learnable_kernel=False, motion_fraction=0.0))
    x = frames(1, 2, c=8)
    with torch.no_grad():
        y = sim(x)
        const = torch.sigmoid(sim.sma.recover.bias)[None, :, None, None]
    last = x[T - 1:T, 4:]  # last frame of snippet 0: no successor -> D = 0 -> atten = σ(bias)
    torch.testing.assert_close(y[T - 1:T, 4:], last * const + last)


def test_learnable_kernel_is_a_per_sample_per_channel_distribution():
    sim = randomise(IntraSIM(C, snippet_len=T, kernel_size=3))
    x = frames(1, 2)
    k = sim.kernel(x[:, C // 2:])
    assert k.shape == (2, C // 2, 3)
    torch.testing.assert_close(k.sum(-1), torch.ones(2, C // 2))
    assert not torch.allclose(k[0], k[1])  # depends on the snippet's content
    assert not torch.allclose(k[0, 0], k[0, 1])  # and on the channel


@pytest.mark.parametrize("conv_u", ["depthwise", "dense"])
def test_inter_sim_conv_u_starts_as_identity(conv_u):
    sim = InterSIM(C, snippet_len=T, conv_u=conv_u).eval()
    x = frames(1, 3)
    with torch.no_grad():
        y = sim(x, num_snippets=3)
        pooled = x.mean((2, 3)).reshape(1, 3, T, C).permute(0, 3, 1, 2)
        a = torch.sigmoid(sim.branch1(pooled)) * sim.sma(pooled)
    expected = x * (1 + a[0].permute(1, 2, 0).reshape(3 * T, C, 1, 1))
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("conv_u", ["depthwise", "dense"])
def test_inter_sim_conv_u_random_init_is_pytorchs_conv_default(conv_u):
    torch.manual_seed(0)
    sim = InterSIM(C, snippet_len=T, conv_u=conv_u, conv_u_init="random")
    w = sim.conv_u.weight if conv_u == "dense" else sim.conv_u
    fan_in = w[0].numel()
    bound = fan_in ** -0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w.std() > 0.4 * bound  # not the identity
    with pytest.raises(ValueError, match="conv_u_init"):
        InterSIM(C, conv_u_init="zeros")


def test_inter_sim_parameters_do_not_depend_on_u():
    sim = randomise(InterSIM(C, snippet_len=T))
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
                   coord_attention=False, learnable_kernel=False, motion_fraction=0.0).eval()
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


def test_the_float32_region_is_fp16_only_on_both_paths():
    """bf16 has float32's range: neither path leaves bf16 for the differences (the frame path,
    CPU training's and the attention maps', used to: the two paths computed differently)."""
    torch.manual_seed(0)
    sim = IntraSIM(C, snippet_len=T).eval()
    x = frames(1, 2).contiguous(memory_format=torch.channels_last)
    outputs = {}
    for path in ("frames", "auto"):
        for fp32 in (True, False):
            sim.path, sim.sma.fp32_differences = path, fp32
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                outputs[path, fp32] = sim(x).float()
    torch.testing.assert_close(outputs["frames", True], outputs["frames", False], rtol=0, atol=0)
    torch.testing.assert_close(outputs["auto", True], outputs["auto", False], rtol=0, atol=0)


def test_centre_kernel_init_starts_near_the_identity():
    sim = IntraSIM(C, snippet_len=T, kernel_init="centre")
    k = sim.kernel(frames(2, 2)[:, C // 2:])
    expected = torch.tensor([0.05, 0.9, 0.05]).expand_as(k)
    torch.testing.assert_close(k, expected, rtol=0, atol=1e-6)  # whatever the input
    with pytest.raises(ValueError, match="kernel_init"):
        IntraSIM(C, kernel_init="identity")


def test_motion_shortcut_starts_as_the_paper_module_and_adds_the_averaged_difference():
    """The deviation (off by default) is zero at the start and then adds Conv1x1(mean D) to X2."""
    torch.manual_seed(0)
    paper = randomise(IntraSIM(C, snippet_len=T, learnable_kernel=False, motion_fraction=0.0))
    shortcut = IntraSIM(C, snippet_len=T, learnable_kernel=False, motion_shortcut=True, motion_fraction=0.0).eval()
    shortcut.load_state_dict(paper.state_dict(), strict=False)  # the new conv keeps its zero init
    x = frames(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(shortcut(x), paper(x))
        shortcut.sma.motion.weight.normal_()
        f = shortcut.sma.squeeze(x[:, C // 2:])
        d = sum(shortcut.sma.differences(f)) / 2
        expected = paper(x)
        expected[:, C // 2:] += shortcut.sma.motion(d.flatten(0, 1))
        torch.testing.assert_close(shortcut(x), expected, rtol=1e-4, atol=1e-5)


def test_identity_diff_init_makes_eq1_the_plain_temporal_difference():
    """``diff_init="identity"``: at the start ``D_{t,t+1} = F_t - F_{t+1}`` exactly (zero at the
    snippet's border), whatever the frames; the default random init is not a difference."""
    sma = IntraSIM(C, snippet_len=T, diff_init="identity").sma
    x = frames(1, 2)[:, C // 2:]
    f = sma.squeeze(x).unflatten(0, (-1, T))
    forward, backward = (d.detach() for d in sma.differences(sma.squeeze(x)))
    torch.testing.assert_close(forward[:, :-1], (f[:, :-1] - f[:, 1:]).detach())
    torch.testing.assert_close(backward[:, 1:], (f[:, 1:] - f[:, :-1]).detach())
    assert forward[:, -1].abs().max() == 0 and backward[:, 0].abs().max() == 0
    # the same (squeezed) frame T times: made after the squeeze, whose 1x1 conv may round the same frame
    # differently at another place in the batch (a last-bit difference on some CPUs and builds)
    still = f[:, :1].expand(-1, T, -1, -1, -1).flatten(0, 1).detach()
    assert all(d.abs().max() == 0 for d in sma.differences(still))
    random = IntraSIM(C, snippet_len=T, diff_init="random").sma
    assert random.differences(still)[0].abs().max() > 0
    with pytest.raises(ValueError, match="diff_init"):
        IntraSIM(C, diff_init="zero")


@pytest.mark.parametrize("source", ["own", "compressed", "separate"])
def test_motion_fraction_gives_the_difference_channels_of_their_own(source):
    """The deviation (off by default): the last channels of O_2 carry the temporal difference
    (the channels' own, or Conv1x1 of the compressed one), so they are constant on a still
    snippet, follow a change of one frame only inside its snippet, and the rest of the
    output is the paper's module."""
    torch.manual_seed(0)
    paper = IntraSIM(C, snippet_len=T, motion_fraction=0.0).eval()
    sim = IntraSIM(C, snippet_len=T, diff_init="identity", motion_fraction=0.25, motion_source=source).eval()
    sim.load_state_dict({**sim.state_dict(), **paper.state_dict()})  # the paper's weights, its motion channels kept
    m = sim.sma.motion_channels
    assert m == round(0.25 * (C - C // 2))
    x = frames(1, 2)
    with torch.no_grad():
        out, ref = sim(x), paper(x)
        torch.testing.assert_close(out[:, :C - m], ref[:, :C - m])
        still = x.unflatten(0, (-1, T))[:, :1].expand(-1, T, -1, -1, -1).flatten(0, 1)
        constant = torch.zeros(m) if source == "own" else sim.sma.motion_out.bias  # D = 0 on a still snippet
        torch.testing.assert_close(sim(still)[:, C - m:], constant[None, :, None, None].expand(len(still), -1, H, W))
        if source == "own":  # forward differences of the first half of the channels, backward of the rest
            xm = x[:, C - m:].unflatten(0, (-1, T))
            f = m - m // 2
            torch.testing.assert_close(out[:, C - m:C - m + f].unflatten(0, (-1, T))[:, :-1],
                                       xm[:, :-1, :f] - xm[:, 1:, :f])
            torch.testing.assert_close(out[:, C - m + f:].unflatten(0, (-1, T))[:, 1:], xm[:, 1:, f:] - xm[:, :-1, f:])
        y = x.clone()
        y[1] += torch.randn_like(y[1])  # frame 1 of snippet 0 changes
        changed = (sim(y)[:, C - m:] - out[:, C - m:]).abs().flatten(1).amax(1) > 1e-6
    assert changed[:T].any() and not changed[T:].any()
    with pytest.raises(ValueError, match="motion_fraction"):
        IntraSIM(C, motion_fraction=1.0)
    with pytest.raises(ValueError, match="motion_source"):
        IntraSIM(C, motion_fraction=0.25, motion_source="raw")
    with pytest.raises(ValueError, match="motion_reduction"):
        IntraSIM(C, motion_reduction=0)


def test_a_standalone_intra_sim_loads_a_state_dict_without_motion_channels_as_saved():
    """An IntraSIM saved before motion channels were the default loads into a default one with a
    warning, without them, and computes what the saved module computed."""
    torch.manual_seed(0)
    old = IntraSIM(16, snippet_len=4, reduction=2, motion_fraction=0.0).eval()
    new = IntraSIM(16, snippet_len=4, reduction=2)
    assert new.sma.motion_channels > 0
    with pytest.warns(UserWarning, match="no motion-channel tensors"):
        new.load_state_dict(old.state_dict())
    new.eval()
    assert new.sma.motion_channels == 0
    x = torch.randn(8, 16, 6, 6)
    assert torch.equal(new(x), old(x))
