import pytest
import torch

from fourds.method import FourierAdapter, phase_map


def _relu_maps(*shape: int) -> torch.Tensor:
    maps = torch.relu(torch.randn(*shape))
    maps[:, 0] = 0.0  # a dead channel: its whole spectrum is exactly zero
    return maps


def _silence_adapted_amplitude(adapter: FourierAdapter) -> None:
    with torch.no_grad():
        adapter.theta.copy_(torch.tensor([-1e4, 0.0]))  # softmax(theta / 0.1) = (0, 1) exactly


@pytest.mark.parametrize("shape", [(2, 4, 5, 7), (2, 6, 9, 9), (3, 8, 8, 8), (2, 4, 1, 1), (2, 4, 2, 2), (1, 3, 2, 3)])
def test_adapter_is_an_exact_identity_when_the_adapted_amplitude_weight_is_zero(shape):
    torch.manual_seed(0)
    adapter = FourierAdapter(shape[1], reduction=2).train()
    _silence_adapted_amplitude(adapter)
    assert adapter.mix_weights == (0.0, 1.0)
    features = _relu_maps(*shape)
    adapted, phase = adapter(features)
    assert adapted.shape == features.shape and phase.shape == features.shape
    assert (adapted - features).abs().max().item() < 1e-4


def test_default_mix_changes_the_features_but_keeps_their_phase():
    torch.manual_seed(0)
    adapter = FourierAdapter(8)
    assert adapter.mix_weights == (0.5, 0.5)
    features = _relu_maps(2, 8, 6, 5)
    adapted, phase = adapter(features)
    assert (adapted - features).abs().max().item() > 1e-2

    original, result = torch.fft.fft2(features), torch.fft.fft2(adapted)
    defined = original.abs() > 1e-3
    phasor_change = (result / result.abs() - original / original.abs())[defined].abs().max().item()
    assert phasor_change < 1e-3
    assert torch.allclose(phase[defined], torch.angle(original)[defined], atol=1e-5)


def test_gradients_stay_finite_on_dead_channels():
    torch.manual_seed(0)
    adapter = FourierAdapter(4)
    features = _relu_maps(2, 4, 4, 4).requires_grad_(True)
    adapted, phase = adapter(features)
    (adapted.square().mean() + phase.mean()).backward()
    assert torch.isfinite(features.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in adapter.parameters())
    assert adapter.theta.grad.abs().sum() > 0


def test_spectra_are_taken_in_float32_under_autocast():
    adapter = FourierAdapter(4)
    features = _relu_maps(2, 4, 4, 4)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        adapted, phase = adapter(features)
        student_phase = phase_map(features.bfloat16())
    assert adapted.dtype == torch.float32 and phase.dtype == torch.float32
    assert student_phase.dtype == torch.float32 and torch.isfinite(student_phase).all()


def test_phase_map_is_zero_where_the_spectrum_vanishes():
    phase = phase_map(torch.zeros(1, 2, 3, 3))
    assert torch.equal(phase, torch.zeros(1, 2, 3, 3))


def test_amplitude_mix_matches_the_formula_computed_by_hand():
    """f_out = real(IFFT2((a0 |FFT2 g(f)| + a1 |FFT2 f|) * exp(i angle FFT2 f))) with (a0, a1) = softmax(theta / T)."""
    torch.manual_seed(3)
    adapter = FourierAdapter(4, reduction=2, temperature=0.1).eval()
    with torch.no_grad():
        adapter.theta.copy_(torch.tensor([0.05, -0.02]))  # a0 = softmax([0.5, -0.2])[0] = 0.668...
        for module in adapter.transform:
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(3)  # an adapted amplitude clearly unlike the input's
    features = torch.relu(torch.randn(2, 4, 5, 6)) + 0.1  # no vanishing frequency: the phase is defined everywhere

    mixed, phase = adapter(features)

    a0, a1 = torch.softmax(torch.tensor([0.5, -0.2]), dim=0)
    with torch.no_grad():
        adapted_amplitude = torch.fft.fft2(adapter.transform(features)).abs()
    spectrum = torch.fft.fft2(features)
    by_hand = torch.fft.ifft2(
        (a0 * adapted_amplitude + a1 * spectrum.abs()) * torch.exp(1j * torch.angle(spectrum))
    ).real
    assert adapter.mix_weights == pytest.approx((float(a0), float(a1)))
    assert torch.allclose(mixed, by_hand, atol=1e-5)
    assert torch.allclose(phase, torch.angle(spectrum), atol=1e-6)
    assert not torch.allclose(mixed, features, atol=1e-2)  # the mix did change the features
