"""The SIMs' kept (composed) weights and recorded maps against what their parameters say:
new tensors at a freed one's address, a dtype conversion by swapping tensors, a BatchNorm's
``eps``; and the Intra-SMA map of the channels whose attention reaches the output."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from dynsnip import InterSIM, IntraSIM
from dynsnip.modules.composed_weights import clear_composed_weights


def clips(channels: int, u: int = 2, t: int = 4, size: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(u * t, channels, size, size, generator=torch.Generator().manual_seed(seed))


def run(module: torch.nn.Module, x: torch.Tensor, **kwargs) -> torch.Tensor:
    return module(x, num_snippets=2, **kwargs) if isinstance(module, InterSIM) else module(x)


@pytest.mark.parametrize("make, name", [
    (lambda: InterSIM(16), "branch1.0.weight"),
    (lambda: IntraSIM(64), "sma.motion_squeeze.weight"),
])
def test_new_weight_tensors_each_call_are_never_served_the_previous_ones(make, name):
    """functional_call with a new weight tensor on every call (a sweep over a perturbed weight): the
    allocator often puts the new tensor at the freed one's address, with version 0 again; the kept
    weights must still be rebuilt for it (keyed on the tensor itself, not its address)."""
    torch.manual_seed(0)
    module = make().eval()
    x = clips(module.channels if hasattr(module, "channels") else 16)
    base = dict(module.named_parameters())[name].detach()
    extra = {"num_snippets": 2} if isinstance(module, InterSIM) else {}

    def weight(i: int) -> torch.Tensor:
        return base + 0.5 * torch.randn(base.shape, generator=torch.Generator().manual_seed(i))

    with torch.no_grad():
        got = []
        for i in range(20):  # the kept weights persist from call to call, as in a sweep
            w = weight(i)
            got.append(functional_call(module, {name: w}, (x,), extra))
            del w  # freed: the next one may take its address
        fresh = []
        for i in range(20):
            clear_composed_weights(module)
            fresh.append(functional_call(module, {name: weight(i)}, (x,), extra))
    wrong = sum(not torch.allclose(a, b, atol=1e-6) for a, b in zip(got, fresh))
    assert wrong == 0, f"{wrong} of 20 calls computed with an earlier call's weights"


def test_an_eval_inference_does_not_block_a_swap_tensors_conversion():
    """The kept weights hold views of the parameters; with PyTorch's swap-tensors conversion on,
    ``.double()`` after an eval-mode inference raised "Couldn't swap" (the views held references)."""
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        for module in (InterSIM(16).eval(), IntraSIM(32).eval()):
            x = clips(16 if isinstance(module, InterSIM) else 32)
            with torch.no_grad():
                before = run(module, x)
            module.double()
            with torch.no_grad():
                after = run(module, x.double())
            assert after.dtype == torch.float64 and torch.allclose(after.float(), before, atol=1e-5)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)


def test_a_changed_batchnorm_eps_is_seen_by_the_kept_weights():
    torch.manual_seed(0)
    module = InterSIM(16).eval()
    bn = module.branch1[1]
    bn.running_var.uniform_(0.001, 0.01)  # small variances: eps matters
    x = clips(16)
    with torch.no_grad():
        run(module, x)
        bn.eps = 0.05
        got = run(module, x)
        clear_composed_weights(module)
        fresh = run(module, x)
    assert torch.allclose(got, fresh, atol=1e-6)


def test_the_intra_sma_map_is_that_of_the_channels_whose_attention_is_used():
    """With motion channels (the default), the last C/2 - gated channels of the attention are replaced
    by the motion channels in the output: their rows of the recovery convs never train. The recorded
    map (Figure 4) is the mean over the gated channels only, so changing those rows changes neither
    the output nor the map."""
    torch.manual_seed(0)
    module = IntraSIM(32).eval()
    assert module.sma.motion_channels > 0
    gated = 16 - module.sma.motion_channels
    x = clips(32)
    module.record_attention = True

    def forward():
        with torch.no_grad():
            out = module(x)
        return out, module.attention.clone()

    out, atten = forward()
    with torch.no_grad():
        for conv in (module.sma.recover_h, module.sma.recover_w):
            conv.weight[gated:] += 3.0
            conv.bias[gated:] -= 2.0
    out2, atten2 = forward()
    assert torch.allclose(out, out2)  # those rows reach no output
    assert torch.allclose(atten, atten2)  # and no longer the map
    with torch.no_grad():
        module.sma.recover_h.weight[:gated] += 3.0
    assert not torch.allclose(forward()[1], atten)  # the gated rows do
