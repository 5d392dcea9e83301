import math

import numpy as np
import pytest
import torch

from diffsens.diffeo import (
    GAUSSIAN_SIGMA,
    deform,
    displacement_field,
    log_spaced_temperatures,
    sample_displacement,
    sample_modes,
    temperature_for_displacement,
    temperature_range,
    typical_displacement,
    warp,
)


class TestTemperatures:
    def test_range_values(self):
        T_min, T_max = temperature_range(32, 3)
        assert T_min == pytest.approx(1 / (math.pi * 32**2 * math.log(3)), rel=1e-12)
        assert T_max == pytest.approx(4 / (math.pi**3 * 9 * math.log(3)), rel=1e-12)

    def test_t_min_is_half_a_pixel(self):
        for n, cut in [(28, 3), (32, 3), (64, 5)]:
            T_min, _ = temperature_range(n, cut)
            assert typical_displacement(T_min, cut, n) == pytest.approx(0.5, rel=1e-12)

    def test_images_too_small_for_any_smooth_deformation_are_refused(self):
        # T_min < T_max exactly when n > pi cut / 2: 5 px works at cut 3 (4.71), 4 px does not
        T_min, T_max = temperature_range(5, 3)
        assert T_min < T_max
        with pytest.raises(ValueError, match=r"4 x 4 pixels .* larger than 4.71 .* below 2.55"):
            temperature_range(4, 3)
        assert temperature_range(4, 2.5)[0] < temperature_range(4, 2.5)[1]  # 2.5 < 8 / pi

    def test_displacement_formula_and_inverse(self):
        T = np.logspace(-5, -1, 7)
        delta = typical_displacement(T, 3, 32)
        np.testing.assert_allclose(delta, 16 * np.sqrt(math.pi * T * math.log(3)), rtol=1e-12)
        np.testing.assert_allclose(temperature_for_displacement(delta, 3, 32), T, rtol=1e-12)

    def test_paper_setting_one_pixel(self):
        T = temperature_for_displacement(1.0, 3, 32)
        assert T == pytest.approx(4 / (math.pi * 1024 * math.log(3)), rel=1e-12)

    def test_tensor_input(self):
        T = torch.tensor([1e-3, 1e-2], dtype=torch.float64)
        assert torch.allclose(
            temperature_for_displacement(typical_displacement(T, 3, 32), 3, 32), T
        )

    def test_cut_must_exceed_one(self):
        with pytest.raises(ValueError, match="cut must be > 1"):
            temperature_range(32, 1)


def expected_mean_square(n, cut, T):
    """E[dx(y, x)^2] on the grid, summed mode by mode (independent amplitudes)."""
    u = np.linspace(0, 1, n)
    total = np.zeros((n, n))
    m = math.ceil(cut + 0.5)
    for i in range(1, m + 1):
        for j in range(1, m + 1):
            if math.hypot(i, j) < cut + 0.5:
                total += np.outer(np.sin(j * np.pi * u) ** 2, np.sin(i * np.pi * u) ** 2) / (
                    i * i + j * j
                )
    return n**2 * T * total


class TestSampling:
    def test_shape_dtype_device(self, device, dtype):
        d = sample_displacement(5, 16, 0.01, 3, device=device, dtype=dtype)
        assert d.shape == (5, 2, 16, 16) and d.dtype == dtype and d.device.type == device.type

    def test_border_is_exactly_zero(self, dtype):
        d = sample_displacement(
            64, 12, 0.02, 4, dtype=dtype, generator=torch.Generator().manual_seed(1)
        )
        for edge in (d[..., 0, :], d[..., -1, :], d[..., :, 0], d[..., :, -1]):
            assert torch.count_nonzero(edge) == 0
        assert torch.count_nonzero(d[..., 1:-1, 1:-1]) > 0

    def test_modes_outside_disc_are_zero(self):
        modes = sample_modes(
            1000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
        assert modes.shape == (1000, 2, 4, 4)
        # sqrt(i^2 + j^2) < 3.5 keeps (1,1),(1,2),(1,3),(2,2),(2,1),(3,1),(2,3)?, not (3,3)/(x,4)
        kept = (modes != 0).any(0).any(0)
        i, j = np.meshgrid(np.arange(1, 5), np.arange(1, 5), indexing="ij")
        assert np.array_equal(kept.numpy(), np.hypot(i, j) < 3.5)
        # variance of each kept amplitude is 1 / (i^2 + j^2)
        var = modes.var(dim=(0, 1)).numpy()
        np.testing.assert_allclose(var[kept], (1 / (i**2 + j**2))[kept], rtol=0.1)

    def test_mean_square_displacement_matches_mode_sum(self):
        n, cut, T = 16, 3, 0.01
        d = sample_displacement(
            40000, n, T, cut, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
        )
        empirical = d.square().mean(dim=(0, 1)).numpy()
        expected = expected_mean_square(n, cut, T)
        np.testing.assert_allclose(empirical.mean(), expected.mean(), rtol=0.02)
        interior = expected > 0.2 * expected.max()
        np.testing.assert_allclose(empirical[interior], expected[interior], rtol=0.1)

    def test_per_image_temperatures(self):
        g = torch.Generator().manual_seed(3)
        modes = sample_modes(3, 3, generator=g, dtype=torch.float64)
        T = torch.tensor([0.0, 0.01, 0.04], dtype=torch.float64)
        d = displacement_field(modes, 10, T)
        unit = displacement_field(modes, 10, 1.0)
        assert torch.count_nonzero(d[0]) == 0
        assert torch.allclose(d[1], 0.1 * unit[1]) and torch.allclose(d[2], 0.2 * unit[2])

    def test_generator_reproducible(self):
        a = sample_displacement(4, 8, 0.01, 3, generator=torch.Generator().manual_seed(7))
        b = sample_displacement(4, 8, 0.01, 3, generator=torch.Generator().manual_seed(7))
        c = sample_displacement(4, 8, 0.01, 3, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_each_image_has_its_own_field(self):
        d = sample_displacement(2, 8, 0.01, 3, generator=torch.Generator().manual_seed(0))
        assert not torch.allclose(d[0], d[1])

    def test_same_draw_on_every_device(self, device):
        cpu = sample_displacement(3, 8, 0.01, 3, generator=torch.Generator().manual_seed(5))
        other = sample_displacement(
            3, 8, 0.01, 3, generator=torch.Generator().manual_seed(5), device=device
        )
        torch.testing.assert_close(other.cpu(), cpu)

    def test_bad_temperature_shape(self):
        with pytest.raises(ValueError, match="one per image"):
            sample_displacement(3, 8, torch.tensor([0.1, 0.2]), 3)

    def test_negative_temperature(self):
        with pytest.raises(ValueError, match=">= 0"):
            sample_displacement(2, 8, -0.1, 3)


def brute_force_warp(images, displacement, interp):
    """Pixel-by-pixel reference implementation of the convention, in float64."""
    b, c, h, w = images.shape
    out = np.zeros((b, c, h, w))
    img = images.double().numpy()
    disp = displacement.double().numpy()
    for k in range(b):
        for y in range(h):
            for x in range(w):
                sx = min(max(x - disp[k, 0, y, x], 0), w - 1)
                sy = min(max(y - disp[k, 1, y, x], 0), h - 1)
                if interp == "bilinear":
                    x0, y0 = math.floor(sx), math.floor(sy)
                    x1, y1 = math.ceil(sx), math.ceil(sy)
                    fx, fy = sx - x0, sy - y0
                    out[k, :, y, x] = (
                        (1 - fy) * (1 - fx) * img[k, :, y0, x0]
                        + (1 - fy) * fx * img[k, :, y0, x1]
                        + fy * (1 - fx) * img[k, :, y1, x0]
                        + fy * fx * img[k, :, y1, x1]
                    )
                elif interp == "nearest":
                    out[k, :, y, x] = img[k, :, round(sy), round(sx)]
                else:
                    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
                    weight = np.exp(-((sx - xx) ** 2 + (sy - yy) ** 2) / (2 * GAUSSIAN_SIGMA**2))
                    out[k, :, y, x] = (weight * img[k]).sum((-1, -2)) / weight.sum()
    return out


class TestWarp:
    @pytest.mark.parametrize("interp", ["bilinear", "nearest", "gaussian"])
    def test_matches_brute_force(self, interp, device):
        g = torch.Generator().manual_seed(0)
        images = torch.randn(3, 2, 7, 9, generator=g, dtype=torch.float64)
        # large displacements so that clamping at the border is exercised too
        displacement = 3 * torch.randn(3, 2, 7, 9, generator=g, dtype=torch.float64)
        result = warp(images.to(device), displacement.to(device), interp).cpu().numpy()
        np.testing.assert_allclose(
            result, brute_force_warp(images, displacement, interp), atol=1e-9
        )

    @pytest.mark.parametrize("interp", ["bilinear", "nearest"])
    def test_integer_displacement_is_exact_shift(self, interp, dtype):
        images = torch.randn(2, 3, 10, 10, dtype=dtype, generator=torch.Generator().manual_seed(2))
        displacement = torch.zeros(2, 2, 10, 10, dtype=dtype)
        displacement[:, 0] = 2  # dx
        displacement[:, 1] = -1  # dy
        out = warp(images, displacement, interp)
        # out[y, x] = in[y - dy, x - dx] = in[y + 1, x - 2] wherever that pixel exists
        expected = images[:, :, 1:, :-2]
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(out[:, :, :-1, 2:], expected, atol=tol, rtol=0)

    def test_convention_one_hot_moves_with_positive_dx(self):
        image = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
        image[0, 0, 2, 1] = 1
        displacement = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
        displacement[:, 0] = 1  # content moves right by one pixel
        out = warp(image, displacement)
        assert out[0, 0, 2, 2] == pytest.approx(1) and out.sum() == pytest.approx(1)
        displacement = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
        displacement[:, 1] = 2  # content moves down by two pixels
        out = warp(image, displacement)
        assert out[0, 0, 4, 1] == pytest.approx(1) and out.sum() == pytest.approx(1)

    def test_zero_displacement_is_identity(self, dtype):
        images = torch.rand(2, 3, 8, 8, dtype=dtype)
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        torch.testing.assert_close(
            warp(images, torch.zeros(2, 2, 8, 8, dtype=dtype)), images, atol=tol, rtol=0
        )

    def test_gaussian_preserves_constants(self):
        images = torch.full((1, 1, 6, 6), 3.0, dtype=torch.float64)
        displacement = torch.randn(1, 2, 6, 6, dtype=torch.float64)
        torch.testing.assert_close(warp(images, displacement, "gaussian"), images)

    def test_channels_share_the_field(self):
        g = torch.Generator().manual_seed(4)
        image = torch.rand(1, 1, 8, 8, dtype=torch.float64, generator=g)
        displacement = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=g)
        out = warp(image.expand(1, 3, 8, 8), displacement)
        assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="images must have shape"):
            warp(torch.zeros(3, 8, 8), torch.zeros(3, 2, 8, 8))
        with pytest.raises(ValueError, match="2 channels"):
            warp(torch.zeros(3, 1, 8, 8), torch.zeros(3, 3, 8, 8))
        with pytest.raises(ValueError, match="size B of displacement"):
            warp(torch.zeros(3, 1, 8, 8), torch.zeros(2, 2, 8, 8))
        with pytest.raises(ValueError, match="size W of displacement"):
            warp(torch.zeros(3, 1, 8, 8), torch.zeros(3, 2, 8, 7))
        with pytest.raises(ValueError, match="interp must be one of"):
            warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8), "bicubic")
        with pytest.raises(TypeError, match="floating-point"):
            warp(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), torch.zeros(1, 2, 8, 8))


class TestDeform:
    def test_small_temperature_barely_moves(self):
        images = torch.rand(4, 3, 16, 16, dtype=torch.float64)
        assert torch.allclose(deform(images, 1e-12, 3), images, atol=1e-4)

    def test_reproducible_and_pixel_norm(self, device):
        images = torch.rand(4, 3, 16, 16, device=device)
        a = deform(images, 0.01, 3, generator=torch.Generator().manual_seed(0))
        b = deform(images, 0.01, 3, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and a.device.type == device.type
        assert not torch.allclose(a, images)

    def test_non_square(self):
        with pytest.raises(ValueError, match="square"):
            deform(torch.zeros(1, 1, 8, 9), 0.01, 3)


class TestArgumentChecks:
    """Bad arguments fail at the entry with the argument's name, before any draw or NaN."""

    @pytest.mark.parametrize(
        ("call", "error", "match"),
        [
            (lambda: temperature_range(0, 3), ValueError, "n must be an int >= 2, got 0"),
            (lambda: temperature_range(1, 3), ValueError, "n must be an int >= 2, got 1"),
            (lambda: temperature_range(True, 3), TypeError, "n must be an int >= 2, got True"),
            (lambda: temperature_range(32.0, 3), TypeError, "n must be an int"),
            (lambda: temperature_range(32, 0.5), ValueError, "cut must be > 1"),
            (lambda: temperature_range(32, math.nan), ValueError, "cut must be > 1"),
            (lambda: temperature_range(32, math.inf), ValueError, "cut must be > 1 and finite"),
            (lambda: temperature_range(32, True), TypeError, "cut must be a real number"),
            (lambda: temperature_range(32, "3"), TypeError, "cut must be a real number"),
            (
                lambda: typical_displacement(-1, 3, 32),
                ValueError,
                "T must be finite and >= 0, got -1",
            ),
            (lambda: typical_displacement(math.nan, 3, 32), ValueError, "T must be finite"),
            (lambda: typical_displacement(math.inf, 3, 32), ValueError, "T must be finite"),
            (lambda: typical_displacement(1e-3, 1, 32), ValueError, "cut must be > 1"),
            (lambda: typical_displacement(1e-3, 3, 0), ValueError, "n must be an int >= 2"),
            (lambda: typical_displacement(True, 3, 32), TypeError, "T must be a real number"),
            (lambda: typical_displacement([1e-3], 3, 32), TypeError, "T must be a real number"),
            (lambda: typical_displacement(1j, 3, 32), TypeError, "T must be a real number"),
            (
                lambda: typical_displacement(np.array([1e-3, -2e-3, 1e-2]), 3, 32),
                ValueError,
                r"T must be finite and >= 0, got \[-0\.002\]",
            ),
            (
                lambda: typical_displacement(torch.tensor([1e-3, math.nan]), 3, 32),
                ValueError,
                r"got \[nan\]",
            ),
            (
                lambda: typical_displacement(torch.tensor([1e-3j]), 3, 32),
                TypeError,
                "T must be a real number",
            ),
            (
                lambda: temperature_for_displacement(-1.0, 3, 32),
                ValueError,
                "delta must be finite and >= 0, got -1.0",
            ),
            (lambda: temperature_for_displacement(math.inf, 3, 32), ValueError, "delta must be"),
            (lambda: temperature_for_displacement(1.0, 3, 1), ValueError, "n must be an int >= 2"),
            (lambda: temperature_for_displacement(1.0, 0.9, 32), ValueError, "cut must be > 1"),
            (lambda: log_spaced_temperatures(32, 3, 0), ValueError, "count must be an int >= 1"),
            (lambda: log_spaced_temperatures(32, 3, 2.0), TypeError, "count must be an int"),
            (lambda: log_spaced_temperatures(32, 3, True), TypeError, "count must be an int"),
            (lambda: log_spaced_temperatures(0, 3, 5), ValueError, "n must be an int >= 2"),
            (lambda: log_spaced_temperatures(32, 1, 5), ValueError, "cut must be > 1"),
            (lambda: sample_modes(2, 1), ValueError, "cut must be > 1"),
            (lambda: sample_modes(2, 0.8), ValueError, r"cut must be > 1 .*got 0\.8"),
            (lambda: sample_modes(0, 3), ValueError, "batch must be an int >= 1, got 0"),
            (lambda: sample_modes(2.0, 3), TypeError, "batch must be an int"),
            (lambda: sample_modes(2, 3, dtype=torch.int64), TypeError, "dtype must be a floating"),
            (
                lambda: sample_displacement(2, 1, 0.01, 3),
                ValueError,
                "n must be an int >= 2, got 1",
            ),
            (lambda: sample_displacement(2, 8, math.nan, 3), ValueError, "T must be finite"),
            (lambda: sample_displacement(True, 8, 0.01, 3), TypeError, "batch must be an int"),
            (lambda: sample_displacement(2, 8, 0.01, 1), ValueError, "cut must be > 1"),
            (
                lambda: displacement_field(torch.zeros(2, 2, 4, 4), 1, 0.01),
                ValueError,
                "n must be an int >= 2",
            ),
            (
                lambda: displacement_field(torch.zeros(2, 2, 4, 4), 8, torch.tensor([0.01, -1.0])),
                ValueError,
                r"T must be finite and >= 0, got \[-1\.0\]",
            ),
            (
                lambda: displacement_field(torch.zeros(2, 2, 4, 4, dtype=torch.int64), 8, 0.01),
                TypeError,
                "modes must be a floating-point tensor",
            ),
            (lambda: deform(torch.zeros(2, 1, 1, 1), 0.01, 3), ValueError, "n >= 2"),
            (lambda: deform(torch.zeros(0, 1, 8, 8), 0.01, 3), ValueError, "B >= 1"),
            (lambda: deform(torch.zeros(2, 1, 8, 8), -0.01, 3), ValueError, "T must be finite"),
            (lambda: deform(torch.zeros(2, 1, 8, 8), 0.01, 1), ValueError, "cut must be > 1"),
            (
                lambda: deform(torch.zeros(2, 1, 8, 8), 0.01, 3, interp="cubic"),
                ValueError,
                "interp must be one of",
            ),
            (lambda: deform([[0.0]], 0.01, 3), TypeError, "images must be a torch.Tensor"),
        ],
    )
    def test_refused(self, call, error, match):
        with pytest.raises(error, match=match):
            call()

    def test_no_complex_displacement_for_negative_temperature(self):
        # (n / 2) sqrt(pi T ln cut) of T < 0 was a complex number; T = 0 is the identity: 0 px.
        with pytest.raises(ValueError, match="T must be finite and >= 0"):
            typical_displacement(-1, 3, 32)
        assert typical_displacement(0, 3, 32) == 0
        assert typical_displacement(np.int64(0), 3, np.int64(32)) == 0

    def test_numpy_integers_are_sizes(self):
        assert temperature_range(np.int64(32), 3) == temperature_range(32, 3)

    def test_log_spaced_values(self):
        T_min, T_max = temperature_range(32, 3)
        assert log_spaced_temperatures(32, 3, 1) == [T_min]
        middle = math.sqrt(T_min * T_max)  # geometric mean: the log-midpoint
        np.testing.assert_allclose(log_spaced_temperatures(32, 3, 3), [T_min, middle, T_max])

    @pytest.mark.parametrize(
        "call",
        [
            lambda g: sample_modes(2, 1.0, generator=g),
            lambda g: sample_modes(2, 3, generator=g, dtype=torch.int32),
            lambda g: sample_displacement(3, 8, torch.tensor([0.1, 0.2]), 3, generator=g),
            lambda g: sample_displacement(3, 1, 0.01, 3, generator=g),
            lambda g: deform(torch.zeros(3, 1, 8, 8), 0.01, 3, interp="bicubic", generator=g),
            lambda g: deform(torch.zeros(3, 1, 8, 8), torch.tensor([0.1, 0.2]), 3, generator=g),
        ],
    )
    def test_refused_before_any_draw(self, call):
        g = torch.Generator().manual_seed(0)
        state = g.get_state()
        with pytest.raises((ValueError, TypeError)):
            call(g)
        assert torch.equal(g.get_state(), state)

    def test_warp_refuses_non_finite_fields_naming_them(self):
        displacement = torch.zeros(4, 2, 8, 8)
        displacement[1, 0, 3, 3] = math.nan
        displacement[3, 1, 2, 5] = math.inf
        with pytest.raises(ValueError, match=r"displacement fields \[1, 3\] hold NaN or infinite"):
            warp(torch.zeros(4, 1, 8, 8), displacement)
