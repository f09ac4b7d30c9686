"""The Fourier adapter: re-style a frozen teacher's stage features through their amplitude spectrum.

4Ds's premise: in a feature map's 2-D spectrum the phase carries the content
(domain-invariant) and the amplitude the style (domain-specific). The adapter lets a
small learned transform propose target-domain amplitudes, mixes them with the
original ones, and keeps the original phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def phase_map(features: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """Phase (angle) of the 2-D FFT over H, W, in float32; frequencies with |F| < floor get phase 0.

    The angle of a near-zero complex number is noise and its gradient (~1/|F|) blows
    up (dead ReLU channels give exact zeros), hence the floor.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        return _guarded_phase(torch.fft.fft2(features.float()), floor)


def _guarded_phase(spectrum: torch.Tensor, floor: float) -> torch.Tensor:
    tiny = spectrum.abs() < floor
    real = torch.where(tiny, torch.ones_like(spectrum.real), spectrum.real)
    imag = torch.where(tiny, torch.zeros_like(spectrum.imag), spectrum.imag)
    return torch.atan2(imag, real)


class FourierAdapter(nn.Module):
    """f -> real(IFFT2(A_mix * exp(i * P_f))) with A_mix = a0 * |FFT2(g(f))| + a1 * |FFT2(f)|.

    ``g`` is a 1x1-conv bottleneck (C -> C/r -> C, BN+ReLU between, BN after, no bias);
    ``(a0, a1) = softmax(theta / temperature)`` with ``theta`` chosen so that a0 starts at
    ``initial_mix`` (the reference: 0.5, an even mix; ``theta = 0``). Returns the adapted
    features and the phase map P_f of the input.

    With ``residual=True`` the adapter also adds ``s * g(f)``, a per-channel scale ``s`` (zero at
    the start, so the adapter begins exactly as without it) times the bottleneck's output: the
    amplitude mix can only re-style a feature map, keeping its phase (content), while this path
    can change the content too, for shifts the style alone does not explain.

    The output is computed as ``IFFT2(F_f * (a1 + a0 * A_g / max(A_f, floor)))``, which
    equals the formula above wherever A_f >= floor, is exactly the input when a0 = 0,
    and adds no adapted amplitude where the input's phase is undefined (A_f < floor).
    """

    def __init__(
        self, channels: int, reduction: int = 4, temperature: float = 0.1, floor: float = 1e-5, initial_mix: float = 0.5,
        residual: bool = False,
    ):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"FourierAdapter needs channels >= 1 and reduction >= 1, got {channels} and {reduction}")
        if not 0 < initial_mix < 1:
            raise ValueError(f"FourierAdapter's initial_mix (a0 at start) must be in (0, 1), got {initial_mix}")
        hidden = max(1, channels // reduction)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        # softmax([t, -t] / T)[0] = sigmoid(2t / T) = initial_mix  <=>  t = T/2 * logit(initial_mix).
        half_logit = 0.5 * temperature * math.log(initial_mix / (1 - initial_mix))
        self.theta = nn.Parameter(torch.tensor([half_logit, -half_logit]))
        self.residual_scale = nn.Parameter(torch.zeros(channels)) if residual else None
        self.temperature = temperature
        self.floor = floor

    def amplitude_weights(self) -> torch.Tensor:
        """(a0, a1): the weights of the adapted and the original amplitude (differentiable)."""
        return F.softmax(self.theta / self.temperature, dim=0)

    @property
    def mix_weights(self) -> tuple[float, float]:
        """(a0, a1) as plain numbers, for logging."""
        adapted, original = self.amplitude_weights().detach().cpu().tolist()
        return adapted, original

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        adapted = self.transform(features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            spectrum = torch.fft.fft2(features.float())
            adapted_amplitude = torch.fft.fft2(adapted.float()).abs()
            amplitude = spectrum.abs()
            a_adapted, a_original = self.amplitude_weights().float()
            # F_f / max(A_f, floor) is the unit phasor exp(i P_f) where the phase is defined.
            gain = a_original + a_adapted * adapted_amplitude / amplitude.clamp_min(self.floor)
            mixed = torch.fft.ifft2(spectrum * gain).real.contiguous()
            phase = _guarded_phase(spectrum, self.floor)
        mixed = mixed.to(features.dtype)
        if self.residual_scale is not None:
            mixed = mixed + self.residual_scale.view(1, -1, 1, 1) * adapted
        return mixed, phase
