"""Maximum-entropy diffeomorphisms of square images (docs/science.md §3).

A displacement field is a sum of sine modes with i, j >= 1 and sqrt(i^2 + j^2) < cut + 1/2,
each with an independent Gaussian amplitude of variance 1 / (i^2 + j^2), scaled by n sqrt(T).
The temperature ``T`` sets the size of the deformation, ``cut`` its smoothness.

Convention:
    * images are ``(B, C, H, W)``; displacement fields are ``(B, 2, H, W)`` in pixels;
    * channel 0 is ``dx`` (along the last, horizontal axis), channel 1 is ``dy``;
    * the field is sampled on the grid ``linspace(0, 1, n)`` and vanishes on the border;
    * warping: output pixel ``(y, x)`` takes the input value at ``(y - dy, x - dx)``, source
      coordinates clamped to ``[0, n - 1]`` (pixel centres, i.e. ``align_corners=True``).

Randomness is kept apart from the deterministic maths: :func:`sample_modes` draws amplitudes from
an explicit ``torch.Generator``; :func:`displacement_field` and :func:`warp` are deterministic.
Amplitudes are drawn on the generator's device, so CPU and CUDA runs with the same generator see
the same deformations.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from diffsens._checks import (
    check_choice,
    check_cut,
    check_finite,
    check_float_dtype,
    check_int,
    check_positive,
    check_sizes_agree,
    check_tensor,
)

__all__ = [
    "GAUSSIAN_SIGMA",
    "INTERPOLATIONS",
    "deform",
    "displacement_field",
    "log_spaced_temperatures",
    "sample_displacement",
    "sample_modes",
    "temperature_for_displacement",
    "temperature_range",
    "typical_displacement",
    "warp",
]

INTERPOLATIONS = ("bilinear", "nearest", "gaussian")
GAUSSIAN_SIGMA = 0.4715
"""Width in pixels of the Gaussian interpolation kernel."""
_GAUSSIAN_RADIUS = 4  # taps beyond 4 px weigh < exp(-3.5^2 / (2 sigma^2)) ~ 1e-12: negligible


def temperature_range(n: int, cut: float) -> tuple[float, float]:
    """Return ``(T_min, T_max)`` for ``n x n`` images and cut-off ``cut``.

    ``T_min`` moves pixels by half a pixel on average; above ``T_max`` the deformation starts to
    fold the image onto itself.
    """
    n = check_int("n", n, 2)
    cut = check_cut(cut)
    log_c = math.log(cut)
    T_min, T_max = 1 / (math.pi * n**2 * log_c), 4 / (math.pi**3 * cut**2 * log_c)
    if T_min >= T_max:  # n <= pi cut / 2: half a pixel already folds the image
        raise ValueError(
            f"images of {n} x {n} pixels have no smooth deformations at cut-off {cut}: "
            f"T_min = {T_min:.4g} (half a pixel) is not below T_max = {T_max:.4g}; "
            f"use images larger than {math.pi * cut / 2:.3g} pixels or a cut-off below "
            f"{2 * n / math.pi:.3g}"
        )
    return T_min, T_max


def typical_displacement(T, cut: float, n: int):
    """Root-mean-square displacement ``delta = (n / 2) sqrt(pi T ln cut)`` in pixels.

    ``T`` may be a float, a NumPy array or a tensor, finite and >= 0 (a negative T would give a
    complex root); the result has the same type.
    """
    check_positive("T", T, strict=False)
    n, log_c = check_int("n", n, 2), math.log(check_cut(cut))
    return (n / 2) * (math.pi * T * log_c) ** 0.5


def temperature_for_displacement(delta, cut: float, n: int):
    """Inverse of :func:`typical_displacement`: ``T = 4 delta^2 / (pi n^2 ln cut)``."""
    check_positive("delta", delta, strict=False)
    n, log_c = check_int("n", n, 2), math.log(check_cut(cut))
    return 4 * delta**2 / (math.pi * n**2 * log_c)


def log_spaced_temperatures(n: int, cut: float, count: int) -> list[float]:
    """``count`` temperatures log-spaced over ``[T_min, T_max]`` (both included)."""
    count = check_int("count", count, 1)
    T_min, T_max = temperature_range(n, cut)
    if count == 1:
        return [T_min]
    ratio = (T_max / T_min) ** (1 / (count - 1))
    return [T_min * ratio**k for k in range(count - 1)] + [T_max]


@functools.lru_cache(maxsize=16)
def _mode_std(cut: float) -> torch.Tensor:
    """Standard deviation of each amplitude, ``[m, m]`` (x mode, y mode); zero outside the disc."""
    m = math.ceil(cut + 0.5)
    k = torch.arange(1, m + 1, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    return torch.where(radius < cut + 0.5, 1 / radius, torch.zeros(()))


@functools.lru_cache(maxsize=32)
def _sine_basis(n: int, m: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``S[p, k] = sin((k + 1) pi p / (n - 1))``, ``[n, m]``, exactly zero on both borders."""
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    basis = torch.sin(math.pi * u[:, None] * torch.arange(1, m + 1, dtype=torch.float64))
    basis[0] = basis[-1] = 0
    return basis.to(device=device, dtype=dtype)


def sample_modes(
    batch: int,
    cut: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Draw mode amplitudes ``A[b, channel, i, j]`` for ``batch`` independent fields (dx and dy).

    ``A_ij ~ N(0, 1 / (i^2 + j^2))`` inside the disc ``sqrt(i^2 + j^2) < cut + 1/2``, else 0.
    Drawn on the generator's device (CPU without one) and moved to ``device``.
    """
    batch = check_int("batch", batch, 1)
    cut = check_cut(cut)
    dtype = check_float_dtype("dtype", dtype) or torch.get_default_dtype()
    std = _mode_std(cut).to(dtype)
    source = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn((batch, 2, *std.shape), generator=generator, device=source, dtype=dtype)
    return (noise * std.to(source)).to(device or source)


def displacement_field(modes: torch.Tensor, n: int, T) -> torch.Tensor:
    """Turn amplitudes ``(B, 2, m, m)`` into a displacement field ``(B, 2, n, n)`` in pixels.

    ``T`` is a float or a 1-D tensor with one temperature per field. The field is linear in
    ``sqrt(T)``, so one draw of ``modes`` gives the same deformation shape at every temperature.
    """
    check_tensor("modes", modes, "B two i j")
    if modes.shape[1] != 2 or modes.shape[2] != modes.shape[3]:
        raise ValueError(f"modes must have shape (B, 2, m, m), got {tuple(modes.shape)}")
    n = check_int("n", n, 2)
    _check_temperatures(T, modes.shape[0])
    root = torch.as_tensor(T, dtype=modes.dtype, device=modes.device).sqrt().reshape(-1, 1, 1, 1)
    basis = _sine_basis(n, modes.shape[-1], modes.device, modes.dtype)
    scaled = modes * (n * root)  # scale the few modes, not the n^2 pixels
    # field[y, x] = sum_ij A[i, j] S[x, i] S[y, j] = (S A^T S^T)[y, x]
    return basis @ scaled.transpose(-1, -2) @ basis.T


def _check_temperatures(T, batch: int) -> None:
    """One temperature, or one per field; finite and >= 0 (T = 0 leaves the image unchanged)."""
    values = check_positive("T", T, strict=False)
    if values.ndim > 1 or (values.ndim == 1 and len(values) != batch):
        raise ValueError(
            f"T must be a number or a 1-D tensor of {batch} temperatures (one per image), "
            f"got shape {values.shape}"
        )


def sample_displacement(
    batch: int,
    n: int,
    T,
    cut: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Draw ``batch`` independent displacement fields ``(batch, 2, n, n)`` in pixels."""
    _check_temperatures(T, check_int("batch", batch, 1))
    check_int("n", n, 2)
    modes = sample_modes(batch, cut, generator=generator, device=device, dtype=dtype)
    return displacement_field(modes, n, T)


@functools.lru_cache(maxsize=32)
def _identity_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised ``(x, y)`` of every pixel centre, ``[h, w, 2]``, as grid_sample wants."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, dtype=dtype, device=device),
        torch.linspace(-1, 1, w, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1)


def warp(
    images: torch.Tensor, displacement: torch.Tensor, interp: str = "bilinear"
) -> torch.Tensor:
    """Deform ``images (B, C, H, W)`` by ``displacement (B, 2, H, W)`` (pixels; see the module).

    ``interp`` is ``"bilinear"``, ``"nearest"`` or ``"gaussian"`` (a normalised Gaussian kernel of
    width :data:`GAUSSIAN_SIGMA` over the neighbouring pixels).
    """
    check_tensor("images", images, "B C H W")
    check_tensor("displacement", displacement, "B two H W")
    check_sizes_agree("B H W", images=(images, "B C H W"), displacement=(displacement, "B two H W"))
    if displacement.shape[1] != 2:
        raise ValueError(
            f"displacement must have 2 channels (dx, dy), got shape {tuple(displacement.shape)}"
        )
    check_choice("interp", interp, INTERPOLATIONS)
    h, w = images.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"images must be at least 2 x 2 pixels, got {h} x {w}")
    check_finite("displacement fields", displacement)
    return _warp(images, displacement, interp)


def _warp(images: torch.Tensor, displacement: torch.Tensor, interp: str) -> torch.Tensor:
    """:func:`warp` without its checks, for fields finite by construction: checking them would
    cost a device synchronisation per call."""
    h, w = images.shape[-2:]
    displacement = displacement.to(images.dtype)
    if interp == "gaussian":
        return _gaussian_warp(images, displacement)
    scale = torch.tensor([2 / (w - 1), 2 / (h - 1)], dtype=images.dtype, device=images.device)
    identity = _identity_grid(h, w, images.device, images.dtype)
    grid = torch.addcmul(identity, displacement.movedim(1, -1), scale, value=-1)
    # padding_mode="border" clamps the source coordinates to the image, as the convention asks.
    return F.grid_sample(images, grid, mode=interp, padding_mode="border", align_corners=True)


def _gaussian_taps(source: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices ``[..., K]`` and normalised Gaussian weights ``[..., K]`` along one axis."""
    offsets = torch.arange(-_GAUSSIAN_RADIUS, _GAUSSIAN_RADIUS + 1, device=source.device)
    index = source.round().long()[..., None] + offsets
    inside = (index >= 0) & (index < size)
    weight = torch.exp(-((source[..., None] - index) ** 2) / (2 * GAUSSIAN_SIGMA**2)) * inside
    return index.clamp(0, size - 1), weight / weight.sum(-1, keepdim=True)


def _gaussian_warp(images: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    b, c, h, w = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=images.dtype, device=images.device),
        torch.arange(w, dtype=images.dtype, device=images.device),
        indexing="ij",
    )
    ix, wx = _gaussian_taps((xs - displacement[:, 0]).clamp(0, w - 1), w)
    iy, wy = _gaussian_taps((ys - displacement[:, 1]).clamp(0, h - 1), h)
    flat = images.flatten(2)
    out = torch.zeros_like(images)
    # The kernel is separable, so its normalisation is too: weight = wy * wx on each tap pair.
    for a in range(iy.shape[-1]):
        for t in range(ix.shape[-1]):
            index = (iy[..., a] * w + ix[..., t]).flatten(1)[:, None].expand(b, c, -1)
            taps = flat.gather(2, index).view(b, c, h, w)
            out += (wy[..., a] * wx[..., t])[:, None] * taps
    return out


def deform(
    images: torch.Tensor,
    T,
    cut: float,
    *,
    interp: str = "bilinear",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply an independent random diffeomorphism to each of ``images (B, C, n, n)``."""
    check_tensor("images", images, "B C n n")
    b, n = images.shape[0], images.shape[-1]
    if images.shape[-2] != n or n < 2 or b < 1:
        raise ValueError(
            f"images must be square (B, C, n, n) with B >= 1 and n >= 2, got {tuple(images.shape)}"
        )
    check_choice("interp", interp, INTERPOLATIONS)
    displacement = sample_displacement(
        b, n, T, cut, generator=generator, device=images.device, dtype=images.dtype
    )
    return _warp(images, displacement, interp)
