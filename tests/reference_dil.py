"""A literal, loop-by-loop transcription of the paper's equations, used only to check the
vectorised modules. Slow on purpose: every frame, snippet and clip is handled one at a time,
with the module's own weights, so that the test compares two independent readings of Eq. 1-11.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _conv2d(m, x):
    return F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)


def _direction_conv(sma, name: str, o: int):
    """The conv ``name`` of the direction looking at neighbour ``o``: Figure 2's per-direction
    boxes are ``<name>`` (forward, o=+1) and ``<name>_backward`` (o=-1); with shared
    directions there is only ``<name>``."""
    backward = getattr(sma, name + "_backward", None)
    if o < 0 and backward is not None:
        assert not sma.share_directions
        return backward
    assert o > 0 or sma.share_directions or not sma.bidirectional
    return getattr(sma, name)


def intra_sim_reference(sim, x: torch.Tensor) -> torch.Tensor:
    """Eq. 1-6 for ``x`` of shape (N*U*T, C, H, W), one snippet at a time."""
    T = sim.snippet_len
    c1, c2 = sim.split
    sma = sim.sma
    out = torch.empty_like(x)
    for s in range(x.shape[0] // T):
        I = x[s * T:(s + 1) * T]
        I1, X2 = I[:, :c1], I[:, c1:]
        out[s * T:(s + 1) * T, :c1] = I1  # Eq. 6: I_1 unchanged
        Fr = [_conv2d(sma.squeeze, X2[t:t + 1])[0] for t in range(T)]  # compressed by r
        dirs = [+1, -1] if sma.bidirectional else [+1]
        per_dir = []
        for o in dirs:
            conv = _direction_conv(sma, "diff_conv", o)
            G = [_conv2d(conv, f[None])[0] for f in Fr]  # Conv3x3 (channel-wise) of this direction
            D = []
            for t in range(T):
                if 0 <= t + o < T:
                    D.append(Fr[t] - G[t + o])  # Eq. 1
                else:
                    D.append(torch.zeros_like(Fr[t]) if sma.edge == "zero" else Fr[t])
            per_dir.append(torch.stack(D))  # (T, c, H, W)
        if sma.coord_attention:
            hs, ws = [], []
            for o, D in zip(dirs, per_dir):
                Dh = D.permute(3, 1, 2, 0)  # W x c x H x T
                hs.append(_conv2d(_direction_conv(sma, "ht_conv", o), Dh) + Dh)  # Eq. 2 inner
                Dw = D.permute(2, 1, 0, 3)  # H x c x T x W
                ws.append(_conv2d(_direction_conv(sma, "tw_conv", o), Dw) + Dw)  # Eq. 3 inner
            # 1x1 recovery per direction, then the average of both directions, then sigmoid
            AH = torch.stack([_conv2d(sma.recover_h, h.permute(3, 1, 2, 0)) for h in hs]).mean(0)
            AW = torch.stack([_conv2d(sma.recover_w, w.permute(2, 1, 0, 3)) for w in ws]).mean(0)
            A = torch.sigmoid(AH) * torch.sigmoid(AW)
        else:
            A = torch.sigmoid(torch.stack([_conv2d(sma.recover, D) for D in per_dir]).mean(0))
        M = A * X2 + X2
        if sim.kernel is not None:  # Eq. 4 and 5
            g = X2.mean((2, 3)).T  # (c2, T)
            kern = sim.kernel
            K = torch.softmax(F.linear(torch.relu(F.linear(g, kern.phi1.weight, kern.phi1.bias)),
                                       kern.phi2.weight, kern.phi2.bias), dim=-1)  # (c2, k)
            k = K.shape[1]
            O2 = torch.zeros_like(M)
            for t in range(T):
                for j in range(k):
                    tt = t + j - k // 2
                    if 0 <= tt < T:
                        O2[t] += K[:, j, None, None] * M[tt]
            M = O2
        m = sma.motion_channels
        if m:  # deviation (motion_fraction): the last m channels of O_2 carry the difference itself
            M[:, c2 - m:] = _motion_channels_reference(sma, X2, per_dir, dirs, m)
        out[s * T:(s + 1) * T, c1:] = M
    return out


def _differences(sma, frames, conv_name: str, o: int):
    """Eq. 1 with the channel-wise conv ``conv_name`` of direction ``o``, frame by frame."""
    T = len(frames)
    conv = getattr(sma, conv_name if o > 0 else conv_name + "_backward") if conv_name == "own_diff_conv" \
        else _direction_conv(sma, conv_name, o)
    G = [_conv2d(conv, f[None])[0] for f in frames]
    return torch.stack([frames[t] - G[t + o] if 0 <= t + o < T
                        else (torch.zeros_like(frames[t]) if sma.edge == "zero" else frames[t]) for t in range(T)])


def _motion_channels_reference(sma, X2, per_dir, dirs, m):
    """The motion channels of one snippet ``X2 (T, c2, H, W)``: ``(T, m, H, W)``."""
    T = X2.shape[0]
    if sma.motion_source == "own":  # forward differences of the first channels, backward of the rest
        xm = X2[:, X2.shape[1] - m:]
        f = sma.own_split[0]
        parts = [_differences(sma, list(xm[:, :f]), "own_diff_conv", +1)]
        if f < m:
            parts.append(_differences(sma, list(xm[:, f:]), "own_diff_conv", -1))
        return torch.cat(parts, dim=1)
    if sma.motion_source == "compressed":  # the attention's differences, averaged, 1x1
        D = torch.stack(per_dir).mean(0)
    else:  # separate: a compression of its own, Eq. 1 per direction, averaged, 1x1
        G = [_conv2d(sma.motion_squeeze, X2[t:t + 1])[0] for t in range(T)]
        D = torch.stack([_differences(sma, G, "motion_diff_conv", o) for o in dirs]).mean(0)
    return torch.stack([_conv2d(sma.motion_out, D[t:t + 1])[0] for t in range(T)])


def inter_sim_reference(sim, x: torch.Tensor, U: int) -> torch.Tensor:
    """Eq. 7-11 for ``x`` of shape (N*U*T, C, H, W), one clip at a time."""
    T = sim.snippet_len
    C = x.shape[1]
    out = torch.empty_like(x)
    for n in range(x.shape[0] // (U * T)):
        Fc = x[n * U * T:(n + 1) * U * T].reshape(U, T, C, *x.shape[2:])
        Fbar = Fc.mean((3, 4)).permute(2, 0, 1)[None]  # 1 x C x U x T (GAP)
        F1 = torch.sigmoid(sim.branch1(Fbar))[0]  # Eq. 7 (eval-mode BN)
        sma = sim.sma
        Fh = _conv2d(sma.squeeze, Fbar)
        offsets = [+1, -1] if sma.bidirectional else [+1]
        G = {o: _conv2d(_direction_conv(sma, "frame_conv", o), Fh)[0] for o in offsets}
        Fh = Fh[0]
        D = torch.zeros_like(Fh)
        for u in range(U):
            for o in offsets:
                if 0 <= u + o < U:
                    D[:, u] += Fh[:, u] - G[o][:, u + o]  # Eq. 8 (o=+1) / Eq. 9 (o=-1)
                elif sma.edge == "frame":
                    D[:, u] += Fh[:, u]
        F2 = torch.sigmoid(_conv2d(sma.recover, D[None]))[0]  # Eq. 10
        A = F1 * F2  # C x U x T
        Y = Fc * A.permute(1, 2, 0)[..., None, None] + Fc  # U, T, C, H, W
        O = torch.zeros_like(Y)
        if isinstance(sim.conv_u, torch.nn.Conv2d):  # dense: (C_out, C_in, k, 1)
            W = sim.conv_u.weight[..., 0]
            k = W.shape[2]
            for u in range(U):
                for j in range(k):
                    uu = u + j - k // 2
                    if 0 <= uu < U:
                        O[u] += torch.einsum("oc,tchw->tohw", W[:, :, j], Y[uu])  # Eq. 11, Conv_U
        else:
            W = sim.conv_u  # (C, k) depthwise
            k = W.shape[1]
            for u in range(U):
                for j in range(k):
                    uu = u + j - k // 2
                    if 0 <= uu < U:
                        O[u] += W[:, j, None, None] * Y[uu]  # Eq. 11, Conv_U
        out[n * U * T:(n + 1) * U * T] = O.reshape(U * T, C, *x.shape[2:])
    return out
