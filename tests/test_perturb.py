import math

import numpy as np
import pytest
import torch

from diffsens.perturb import matched_noise, move_pixels, noisy, random_directions, shift


class TestNoise:
    def test_matched_norms(self, device, dtype):
        g = torch.Generator().manual_seed(0)
        clean = torch.randn(6, 3, 8, 8, generator=g, dtype=dtype).to(device)
        deformed = clean + torch.randn(6, 3, 8, 8, generator=g, dtype=dtype).to(
            device
        ) * torch.arange(6.0, device=device).view(-1, 1, 1, 1).to(dtype)
        eta = matched_noise(clean, deformed, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(
            eta.flatten(1).norm(dim=1), (deformed - clean).flatten(1).norm(dim=1)
        )
        assert eta[0].abs().max() == 0  # an undeformed image gets no noise

    def test_rectified_is_nonnegative_with_matched_norm(self):
        clean = torch.zeros(4, 1, 5, 5, dtype=torch.float64)
        deformed = torch.ones(4, 1, 5, 5, dtype=torch.float64)
        eta = matched_noise(
            clean, deformed, rectify=True, generator=torch.Generator().manual_seed(0)
        )
        assert (eta >= 0).all()
        torch.testing.assert_close(
            eta.flatten(1).norm(dim=1), torch.full((4,), 5.0, dtype=torch.float64)
        )

    def test_directions_are_unit_and_isotropic(self):
        d = random_directions(
            (20000, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
        torch.testing.assert_close(d.norm(dim=1), torch.ones(20000, dtype=torch.float64))
        assert d.mean(0).abs().max() < 0.02  # E[g/|g|] = 0
        torch.testing.assert_close(
            d.square().mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01, rtol=0
        )

    def test_given_directions_are_used(self):
        clean = torch.zeros(2, 4)
        deformed = torch.full((2, 4), 2.0)
        directions = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, -1.0]])
        eta = matched_noise(clean, deformed, directions=directions)
        assert torch.equal(eta, directions * 4)

    def test_conventions_by_hand(self):
        """x = e_0, moved to e_1 (norm sqrt 2), one direction d: the three noisy inputs."""
        clean = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64)
        moved = torch.tensor([[0.0, 1, 0, 0]], dtype=torch.float64)
        d = torch.tensor([[-0.5, 0.5, -0.5, 0.5]], dtype=torch.float64)
        h = math.sqrt(2) / 2
        gaussian = noisy(clean, moved, "gaussian", directions=d)
        torch.testing.assert_close(gaussian, torch.tensor([[1 - h, h, -h, h]], dtype=d.dtype))
        theirs = noisy(clean, moved, "rectified_input", directions=d)
        torch.testing.assert_close(theirs, torch.tensor([[1 - h, h, 0, h]], dtype=d.dtype))
        rectified = noisy(clean, moved, "rectified", directions=d.abs())
        torch.testing.assert_close(rectified, torch.tensor([[1 + h, h, h, h]], dtype=d.dtype))
        with pytest.raises(ValueError, match="noise must be one of"):
            noisy(clean, moved, "loud")

    def test_shift_rolls_the_last_axis(self):
        x = torch.arange(12.0).view(1, 1, 3, 4)
        assert shift(x)[0, 0].tolist() == [[3, 0, 1, 2], [7, 4, 5, 6], [11, 8, 9, 10]]

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="same shape"):
            matched_noise(torch.zeros(2, 3), torch.zeros(2, 4))


def two_point_images(batch, size, generator):
    images = torch.zeros(batch, 1, size, size)
    positions = torch.randint(0, size, (batch, 2, 2), generator=generator)
    for b in range(batch):
        images[b, 0, positions[b, 0, 0], positions[b, 0, 1]] = 392.0
        images[b, 0, positions[b, 1, 0], positions[b, 1, 1]] = 392.0
    return images


class TestPixelMoves2D:
    def test_each_pixel_moves_to_a_neighbour(self):
        images = torch.zeros(500, 1, 9, 9)
        images[:, 0, 4, 4] = 1.0  # one pixel well inside the image
        moved = move_pixels(images, generator=torch.Generator().manual_seed(0))
        assert moved.sum() == 500 and moved[:, 0, 4, 4].sum() == 0
        _, _, y, x = moved.nonzero(as_tuple=True)
        dy, dx = y - 4, x - 4
        assert set(zip(dy.tolist(), dx.tolist(), strict=True)) == {
            (a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)
        }
        # round(g / |g|) is diagonal when |cos|, |sin| > 1/2: angles 30-60 degrees mod 90, a third
        diagonal = ((dx != 0) & (dy != 0)).double().mean().item()
        assert diagonal == pytest.approx(1 / 3, abs=0.05)

    def test_mass_is_conserved_and_clipped(self):
        images = two_point_images(200, 6, torch.Generator().manual_seed(1))
        images[0] = 0
        images[0, 0, 0, 0] = images[0, 0, 5, 5] = 392.0  # corners: moves are clipped
        moved = move_pixels(images, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(moved.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))

    def test_channels_move_together(self):
        images = torch.zeros(1, 3, 5, 5)
        images[0, :, 2, 2] = torch.tensor([1.0, 2.0, 3.0])
        moved = move_pixels(images, generator=torch.Generator().manual_seed(0))
        _, y, x = moved[0].nonzero(as_tuple=True)
        assert len(set(zip(y.tolist(), x.tolist(), strict=True))) == 1
        assert moved[0, :, y[0], x[0]].tolist() == [1.0, 2.0, 3.0]

    def test_block_is_for_1d_only(self):
        with pytest.raises(ValueError, match="1-D"):
            move_pixels(torch.zeros(1, 1, 4, 4), block=2)


class TestPixelMoves1D:
    def test_steps_are_plus_minus_one(self):
        signals = torch.zeros(1000, 1, 20)
        signals[:, 0, 10] = 1.0
        moved = move_pixels(signals, generator=torch.Generator().manual_seed(0))
        position = moved[:, 0].argmax(dim=1)
        assert set(position.tolist()) == {9, 11}
        assert (position == 11).double().mean().item() == pytest.approx(0.5, abs=0.05)

    def test_block_crossing_moves_are_undone(self):
        signals = torch.zeros(400, 1, 16)
        signals[:, 0, 7] = 1.0  # last pixel of block 0 (block length 8)
        signals[:, 0, 8] = 2.0  # first pixel of block 1
        moved = move_pixels(signals, block=8, generator=torch.Generator().manual_seed(0))
        ones = (moved[:, 0] == 1).nonzero()[:, 1]
        twos = (moved[:, 0] == 2).nonzero()[:, 1]
        assert set(ones.tolist()) == {6, 7} and set(twos.tolist()) == {8, 9}

    def test_clipped_at_edges(self):
        signals = torch.zeros(200, 1, 5)
        signals[:, 0, 0] = 1.0
        moved = move_pixels(signals, generator=torch.Generator().manual_seed(0))
        assert set(moved[:, 0].argmax(1).tolist()) == {0, 1}
        assert np.all(moved.sum((1, 2)).numpy() == 1)

    def test_bad_rank(self):
        with pytest.raises(ValueError, match=r"\(B, C, L\) or \(B, C, H, W\)"):
            move_pixels(torch.zeros(4, 4))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: random_directions(5), TypeError, "shape must be a tuple of sizes"),
        (lambda: random_directions((5,)), ValueError, "shape must hold at least 2 sizes"),
        (lambda: random_directions((3, 0)), ValueError, r"shape\[1\] must be an int >= 1, got 0"),
        (lambda: random_directions((2.0, 3)), TypeError, r"shape\[0\] must be an int"),
        (lambda: random_directions((True, 3)), TypeError, r"shape\[0\] must be an int"),
        (
            lambda: random_directions((2, 3), dtype=torch.int32),
            TypeError,
            "dtype must be a floating-point",
        ),
        (
            lambda: matched_noise([0.0], torch.zeros(1, 1)),
            TypeError,
            "clean must be a torch.Tensor",
        ),
        (
            lambda: matched_noise(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int64)),
            TypeError,
            "deformed must be a floating-point tensor",
        ),
        (
            lambda: matched_noise(torch.zeros(3), torch.zeros(3)),
            ValueError,
            r"clean must have shape \(B F \.\.\.\), got \(3,\)",
        ),
        (
            lambda: matched_noise(
                torch.zeros(2, 3), torch.zeros(2, 3), directions=torch.zeros(2, 4)
            ),
            ValueError,
            r"directions must have the shape of clean \(2, 3\)",
        ),
        (
            lambda: matched_noise(torch.zeros(2, 3), torch.zeros(2, 3), directions=[[1.0] * 3] * 2),
            TypeError,
            "directions must be a torch.Tensor",
        ),
        (lambda: move_pixels([[[1.0]]]), TypeError, "inputs must be a torch.Tensor"),
        (
            lambda: move_pixels(torch.zeros(2, 1, 8, dtype=torch.int64)),
            TypeError,
            "inputs must be a floating-point tensor",
        ),
        (
            lambda: move_pixels(torch.zeros(2, 1, 8), block=0),
            ValueError,
            "block must be an int >= 1",
        ),
        (lambda: move_pixels(torch.zeros(2, 1, 8), block=True), TypeError, "block must be an int"),
        (lambda: move_pixels(torch.zeros(2, 1, 8), block=2.5), TypeError, "block must be an int"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_refused_before_any_draw():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    with pytest.raises(ValueError, match="block only applies to 1-D"):
        move_pixels(torch.ones(2, 1, 4, 4), block=2, generator=g)
    with pytest.raises(TypeError, match="dtype"):
        random_directions((2, 3), dtype=torch.int64, generator=g)
    assert torch.equal(g.get_state(), state)
