"""oneDNN's float32 linear: the same function and gradients as ``F.linear``, used only where it applies."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from app.kernels import linear as kernels
from app.kernels.linear import FastLinear, linear, matmul, onednn_available, use_fast_linears


@pytest.fixture
def onednn(monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN chosen whatever this CPU's measurement says, so the path runs on every machine."""
    assert onednn_available(), "the pinned torch build ships oneDNN's linear kernel"
    monkeypatch.setattr(kernels, "onednn_is_faster", lambda: True)


@pytest.fixture
def blas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "onednn_is_faster", lambda: False)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(7, 24), (3, 5, 24)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_and_gradients_equal_f_linear(onednn: None, shape: tuple[int, ...], with_bias: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    weight = torch.randn(16, 24, requires_grad=True)
    bias = torch.randn(16, requires_grad=True) if with_bias else None
    grad = torch.randn(*shape[:-1], 16)
    inputs = [t for t in (x, weight, bias) if t is not None]

    ours = linear(x, weight, bias)
    assert ours.grad_fn is not None and "OneDnn" in type(ours.grad_fn).__name__
    ours_grads = torch.autograd.grad(ours, inputs, grad)
    reference = F.linear(x, weight, bias)
    reference_grads = torch.autograd.grad(reference, inputs, grad)

    _close(ours, reference)
    for got, want in zip(ours_grads, reference_grads, strict=True):
        _close(got, want)


def test_a_frozen_weight_gets_no_gradient_and_strided_input_is_read_right(onednn: None) -> None:
    torch.manual_seed(1)
    weight = torch.randn(8, 12)  # frozen, as a LoRA base layer's
    x = torch.randn(12, 6, requires_grad=True)
    strided = x.t()  # [6, 12], not contiguous
    out = linear(strided, weight)
    (grad_x,) = torch.autograd.grad(out.sum(), [x])
    _close(out, strided @ weight.t())
    _close(grad_x, (torch.ones(6, 8) @ weight).t())
    assert weight.grad is None


def test_no_graph_under_inference_mode_and_other_dtypes_take_f_linear(onednn: None) -> None:
    torch.manual_seed(2)
    x, weight = torch.randn(4, 10), torch.randn(3, 10)
    with torch.inference_mode():
        _close(linear(x, weight), F.linear(x, weight))
    doubles = linear(x.double(), weight.double())
    assert torch.equal(doubles, F.linear(x.double(), weight.double()))  # float64: torch's own path, bit for bit
    empty = linear(torch.empty(0, 10), weight)
    assert empty.shape == (0, 3)


def test_matmul_multiplies_a_by_b(onednn: None) -> None:
    torch.manual_seed(3)
    a, b = torch.randn(9, 5), torch.randn(5, 11)
    _close(matmul(a, b), a @ b)
    _close(matmul(a.t().contiguous().t(), b.t().contiguous().t()), a @ b)


def test_blas_chosen_means_f_linear_exactly(blas: None) -> None:
    x, weight = torch.randn(4, 10), torch.randn(3, 10, requires_grad=True)
    out = linear(x, weight)
    assert torch.equal(out, F.linear(x, weight))
    assert "OneDnn" not in type(out.grad_fn).__name__


def test_use_fast_linears_swaps_only_plain_linear_layers(onednn: None) -> None:
    class Custom(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), Custom(5, 4), nn.Linear(4, 2, bias=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 6)
    expected = model(x)

    assert use_fast_linears(model) == 2
    assert [type(m) for m in model] == [FastLinear, nn.ReLU, Custom, FastLinear]
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    _close(model(x), expected)
    copied = copy.deepcopy(model)
    _close(copied(x), expected)
    assert type(copied[0]) is FastLinear
    assert use_fast_linears(model) == 0  # already swapped


def test_nothing_is_swapped_where_blas_is_faster(blas: None) -> None:
    model = nn.Sequential(nn.Linear(3, 3))
    assert use_fast_linears(model) == 0
    assert type(model[0]) is nn.Linear


def test_training_through_fast_linears_follows_the_plain_model(onednn: None) -> None:
    """A few AdamW steps of a small MLP: the swapped copy tracks the original to float32 rounding."""
    torch.manual_seed(4)
    plain = nn.Sequential(nn.Linear(8, 32), nn.SiLU(), nn.Linear(32, 1))
    fast = copy.deepcopy(plain)
    use_fast_linears(fast)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    for model in (plain, fast):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(5):
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()
    for p, q in zip(plain.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("value", ["on", "off", "sometimes"])
def test_the_environment_setting_decides(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(kernels.SETTING, value)
    kernels.onednn_is_faster.cache_clear()
    try:
        if value == "sometimes":
            with pytest.raises(ValueError, match="RLHF_ONEDNN_LINEAR: expected auto, on or off"):
                kernels.onednn_is_faster()
        else:
            assert kernels.onednn_is_faster() is (value == "on")
    finally:
        kernels.onednn_is_faster.cache_clear()


def test_a_second_derivative_is_refused_rather_than_wrong(onednn: None) -> None:
    x = torch.randn(3, 4, requires_grad=True)
    weight = torch.randn(2, 4, requires_grad=True)
    (grad_x,) = torch.autograd.grad(linear(x, weight).square().sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with @once_differentiable"):
        grad_x.sum().backward()
