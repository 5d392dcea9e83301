import shutil

import pytest
import torch

from diffsens.data import (
    DatasetUnavailable,
    PreparedData,
    add_noise,
    cifar10,
    data_shape,
    mnist5k,
    prepare,
    probe_set,
    random_crop_flip,
    scale_detection_1d,
    scale_detection_2d,
)
from diffsens.data.transforms import NORMALISATION, normalise
from diffsens.io import CorruptedFile
from diffsens.settings import SettingsError
from tests.cifar_fixture import write_cifar_fixture
from tests.image_folder_fixture import COLOURS, write_image_folder


def two_pixels_2d(images):
    flat = images.flatten(1)
    sites = flat.nonzero()[:, 1].view(-1, 2)
    size = images.shape[-1]
    return sites // size, sites % size, flat[flat != 0].view(-1, 2)


class TestScaleDetection2D:
    def test_labels_follow_distances_and_classes_balance(self):
        (train_x, train_y), (test_x, test_y) = scale_detection_2d(n_train=512, n_test=256, seed=1)
        assert train_x.shape == (512, 1, 28, 28) and test_x.shape == (256, 1, 28, 28)
        for x, y in ((train_x, train_y), (test_x, test_y)):
            rows, cols, values = two_pixels_2d(x)
            assert torch.all(values == 28**2 / 2)
            distance = torch.hypot(
                (rows[:, 0] - rows[:, 1]).float(), (cols[:, 0] - cols[:, 1]).float()
            )
            assert torch.all(distance[y == 1] < 13) and torch.all(distance[y == -1] >= 15)
            assert (y == 1).sum() == (y == -1).sum() == len(y) // 2
        assert train_y.dtype == torch.float32

    def test_seeded(self):
        a = scale_detection_2d(n_train=32, n_test=32, seed=3)
        b = scale_detection_2d(n_train=32, n_test=32, seed=3)
        c = scale_detection_2d(n_train=32, n_test=32, seed=4)
        assert torch.equal(a[0][0], b[0][0]) and not torch.equal(a[0][0], c[0][0])

    def test_bad_settings(self):
        with pytest.raises(ValueError, match="even"):
            scale_detection_2d(n_train=3)
        with pytest.raises(ValueError, match="gap"):
            scale_detection_2d(gap=40)


class TestScaleDetection1D:
    def test_task2_same_block(self):
        (x, y), _ = scale_detection_1d(length=128, xi=32, n_train=400, n_test=100, seed=0)
        assert x.shape == (400, 1, 128)
        sites = x[:, 0].nonzero()[:, 1].view(-1, 2)
        assert torch.all(x[:, 0][x[:, 0] != 0] == 8.0)  # sqrt(128 / 2)
        same = sites[:, 0] // 32 == sites[:, 1] // 32
        assert torch.equal(same, y == 1)
        assert (y == 1).sum() == 200

    def test_task1_periodic_distance(self):
        (x, y), _ = scale_detection_1d(length=64, xi=16, gap=4, task=1, n_train=200, n_test=50)
        sites = x[:, 0].nonzero()[:, 1].view(-1, 2)
        d = (sites[:, 0] - sites[:, 1]).abs()
        d = torch.minimum(d, 64 - d)
        assert torch.all(d[y == 1] < 14) and torch.all(d[y == -1] >= 18)

    def test_bad_task(self):
        with pytest.raises(ValueError, match="task must be"):
            scale_detection_1d(task=3)
        with pytest.raises(ValueError, match="multiple of xi"):
            scale_detection_1d(length=100, xi=32)


def test_mnist5k_is_real_stratified_and_seeded():
    (train_x, train_y), (_test_x, test_y) = mnist5k(n_test=1000, seed=0)
    assert train_x.shape == (4000, 1, 28, 28) and train_x.dtype == torch.uint8
    assert torch.equal(torch.bincount(test_y), torch.full((10,), 100))
    assert torch.equal(torch.bincount(train_y), torch.full((10,), 400))
    assert train_x.float().mean() > 20  # real digits: mostly black, some ink
    (again_x, _), _ = mnist5k(n_test=1000, seed=0)
    assert torch.equal(train_x, again_x)


def test_cifar10_reads_the_real_layout(tmp_path):
    batches = write_cifar_fixture(tmp_path)
    (train_x, _train_y), (test_x, test_y) = cifar10(tmp_path, download=False, verify=False)
    assert train_x.shape == (30, 3, 32, 32) and test_x.shape == (6, 3, 32, 32)
    # rows are stored channel-major: 1024 red, then green, then blue values
    first = batches["data_batch_1"][0][0]
    assert torch.equal(train_x[0], torch.from_numpy(first.reshape(3, 32, 32)))
    assert test_y.tolist() == batches["test_batch"][1]


def test_cifar10_checksums_refuse_a_fixture_with_a_clear_error(tmp_path):
    write_cifar_fixture(tmp_path)
    with pytest.raises(DatasetUnavailable, match="cifar-10-batches-py' is incomplete or corrupted"):
        cifar10(tmp_path, download=False, verify=True)


@pytest.mark.parametrize("download", [False, True])
def test_a_corrupted_cifar10_folder_says_so(tmp_path, download):
    write_cifar_fixture(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DatasetUnavailable) as caught:
        cifar10(tmp_path, download=download, verify=False)
    message = str(caught.value)
    assert "is incomplete or corrupted" in message and "Replace the folder" in message
    assert "could not be downloaded" not in message  # nothing was downloaded: the files are bad
    assert ("delete it to download it again" in message) == download
    shutil.rmtree(tmp_path / "cifar-10-batches-py")  # following the advice: a fresh copy
    write_cifar_fixture(tmp_path)
    assert cifar10(tmp_path, download=download, verify=False)[0][0].shape == (30, 3, 32, 32)


def test_missing_dataset_offline_says_how_to_provide_it(tmp_path):
    with pytest.raises(DatasetUnavailable, match=r"not under .*, and download is off\. Put the"):
        prepare("cifar10", root=str(tmp_path), download=False)
    with pytest.raises(DatasetUnavailable, match=r"MNIST is not under .*MNIST/raw'"):
        prepare("mnist", root=str(tmp_path), download=False)


def test_prepared_cifar10_is_normalised(tmp_path):
    write_cifar_fixture(tmp_path)
    data = prepare("cifar10", root=str(tmp_path), download=False, verify=False)
    mean, std = NORMALISATION["cifar10"]
    raw, _ = cifar10(tmp_path, download=False, verify=False)[0]
    expected = (raw[0, 1].float() / 255 - mean[1]) / std[1]
    torch.testing.assert_close(data.train_images[0, 1], expected)
    assert data.fill == pytest.approx(tuple(-m / s for m, s in zip(mean, std, strict=True)))


def test_prepared_round_trip_and_corruption(tmp_path):
    data = prepare("scale_detection_2d", n_train=16, n_test=8, seed=2)
    path = data.save(tmp_path / "sd.pt")
    back = PreparedData.load(path)
    assert back.name == "scale_detection_2d" and back.num_classes == 1
    assert torch.equal(back.train_images, data.train_images) and back.settings == data.settings
    assert back.fingerprint() == data.fingerprint()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptedFile, match=r"prepared dataset '.*sd\.pt' is unreadable"):
        PreparedData.load(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PreparedData.load(tmp_path / "missing.pt")


def test_fingerprint_follows_the_contents_not_the_origin():
    a = prepare("scale_detection_2d", n_train=16, n_test=8, seed=2)
    assert (
        a.fingerprint() == prepare("scale_detection_2d", n_train=16, n_test=8, seed=2).fingerprint()
    )
    assert (
        a.fingerprint() != prepare("scale_detection_2d", n_train=16, n_test=8, seed=3).fingerprint()
    )
    moved = PreparedData(**{**a._fields(), "settings": {"root": "elsewhere"}})
    assert moved.fingerprint() == a.fingerprint()


def test_declared_shapes_are_the_prepared_shapes(tmp_path):
    for name, settings in [
        ("mnist5k", {"n_test": 200}),
        ("scale_detection_2d", {"size": 12, "xi": 6, "n_train": 8, "n_test": 4}),
        ("scale_detection_1d", {"length": 64, "xi": 16, "n_train": 8, "n_test": 6}),
    ]:
        assert data_shape(name, **settings) == prepare(name, **settings).shape, name
    write_cifar_fixture(tmp_path)
    fixture = prepare("cifar10", root=str(tmp_path), download=False, verify=False).shape
    declared = data_shape("cifar10")
    assert (
        (fixture.dims, fixture.in_channels, fixture.input_size, fixture.num_classes)
        == (
            declared.dims,
            declared.in_channels,
            declared.input_size,
            declared.num_classes,
        )
        == (2, 3, 32, 10)
    )
    with pytest.raises(ValueError, match="n_test must be a multiple of 10"):
        data_shape("mnist5k", n_test=15)


def test_loader_defaults_are_the_schema_defaults():
    import inspect

    from diffsens.settings import dataset_group, defaults

    for name, loader in [
        ("mnist5k", mnist5k),
        ("scale_detection_2d", scale_detection_2d),
        ("scale_detection_1d", scale_detection_1d),
    ]:
        signature = {p.name: p.default for p in inspect.signature(loader).parameters.values()}
        schema = {k: v for k, v in defaults(dataset_group(name)).items() if k != "source"}
        assert signature == schema, name


def test_prepare_rejects_unknown_names_and_settings():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        prepare("svhn")
    with pytest.raises(SettingsError, match=r"scale_detection_2d: .*'xi_' was unexpected"):
        prepare("scale_detection_2d", xi_=3)


def test_training_noise_has_the_given_norm():
    images = torch.zeros(2000, 3, 8, 8)
    noisy = add_noise(images, 10.0, torch.Generator().manual_seed(0))
    norms = noisy.flatten(1).norm(dim=1)
    assert norms.mean().item() == pytest.approx(10.0, rel=0.01)
    assert add_noise(images, 0.0) is images
    again = add_noise(images, 10.0, torch.Generator().manual_seed(1))
    assert not torch.equal(noisy, again)  # redrawn at every call


def test_crop_flip_is_a_padded_shift_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6).repeat(200, 1, 1, 1)
    out = random_crop_flip(images, 2, torch.tensor([-1.0]), g)
    assert out.shape == images.shape
    flipped = 0
    for x, y in zip(images, out, strict=True):
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
        candidates = [padded[:, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        if any(torch.equal(y, c) for c in candidates):
            continue
        assert any(torch.equal(y, c.flip(-1)) for c in candidates)
        flipped += 1
    assert 0.4 < flipped / len(images) < 0.6


def test_crop_flip_is_the_cifar_tutorial_augmentation():
    """Same images, same distribution as torchvision's RandomCrop(padding=4) (pad with black,
    then crop at a uniform offset), RandomHorizontalFlip and Normalize, which a user's CIFAR-10
    loop applies per image on the CPU: every output is one of that pipeline's 2 (2p + 1)^2
    possible outputs, and each is drawn equally often (chi-square test)."""
    from scipy.stats import chisquare
    from torchvision.transforms import functional as F

    padding, n = 4, 3000
    raw = torch.randint(
        0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = NORMALISATION["cifar10"]
    fill = (torch.zeros(3) - torch.tensor(mean)) / torch.tensor(std)
    ours = random_crop_flip(
        normalise(raw, *NORMALISATION["cifar10"]), padding, fill, torch.Generator().manual_seed(1)
    )
    counts = torch.zeros(2, 2 * padding + 1, 2 * padding + 1)
    for image, out in zip(raw, ours, strict=True):
        padded = F.pad(image.float() / 255, [padding], fill=0)  # ToTensor, then RandomCrop's pad
        crops = torch.stack(
            [
                F.crop(padded, i, j, 8, 8)
                for i in range(2 * padding + 1)
                for j in range(2 * padding + 1)
            ]
        )
        theirs = F.normalize(torch.cat([crops, F.hflip(crops)]), mean, std)
        distance = (theirs - out).abs().flatten(1).amax(1)
        assert distance.min() < 1e-5  # one of the tutorial pipeline's outputs
        counts.view(-1)[distance.argmin()] += 1
    assert chisquare(counts.flatten()).pvalue > 0.001
    assert chisquare(counts.sum((1, 2))).pvalue > 0.001  # flips: one half each


def test_probe_set_is_seeded_subset():
    data = prepare("scale_detection_2d", n_train=16, n_test=64, seed=0)
    x, _y = probe_set(data, 10, seed=3)
    x2, _ = probe_set(data, 10, seed=3)
    assert torch.equal(x, x2) and x.shape == (10, 1, 28, 28)
    assert all(any(torch.equal(a, b) for b in data.test_images) for a in x)
    with pytest.raises(ValueError, match=r"1\.\.64"):
        probe_set(data, 65)


def test_an_image_folder_is_resized_cropped_labelled_and_normalised(tmp_path):
    root = write_image_folder(tmp_path, n_train=4, n_test=2, size=(40, 50))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    data = prepare("image_folder", root=str(root), resize=30, crop=24, mean=mean, std=std)
    assert data.train_images.shape == (8, 3, 24, 24) and data.test_images.shape == (4, 3, 24, 24)
    assert data.num_classes == 2 and data.train_labels.tolist() == [0] * 4 + [1] * 4
    for images, labels in (
        (data.train_images, data.train_labels),
        (data.test_images, data.test_labels),
    ):
        for label, colour in enumerate(COLOURS.values()):  # classes in sorted order: cat, dog
            pixels = images[labels == label].mean((0, 2, 3)) * torch.tensor(std) + torch.tensor(
                mean
            )
            torch.testing.assert_close(
                pixels * 255, torch.tensor(colour, dtype=torch.float), atol=3, rtol=0
            )
    assert data.fill == pytest.approx(tuple(-m / s for m, s in zip(mean, std, strict=True)))
    assert data_shape("image_folder", root=str(root), resize=30, crop=24) == data.shape


def test_an_image_folder_measures_its_own_statistics_and_converts_to_grey(tmp_path):
    root = write_image_folder(tmp_path)
    data = prepare("image_folder", root=str(root))
    assert data.train_images.shape[1:] == (3, 32, 32)  # the default crop, from a 40 x 50 image
    torch.testing.assert_close(data.train_images.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train_images.std((0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)
    grey = prepare("image_folder", root=str(root), channels=1, mean=[0], std=[1])
    cat = COLOURS["cat"]  # PIL's luma: L = (299 R + 587 G + 114 B) / 1000
    expected = (299 * cat[0] + 587 * cat[1] + 114 * cat[2]) / 1000 / 255
    assert grey.train_images.shape[1] == 1
    assert grey.train_images[grey.train_labels == 0].mean().item() == pytest.approx(
        expected, abs=2 / 255
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda root: shutil.rmtree(root / "test"),
            r"image folder '.*test' does not exist: put one",
        ),
        (
            lambda root: (
                (root / "test" / "bird").mkdir()
                or (root / "test" / "bird" / "0.png").write_bytes(
                    (root / "test" / "cat" / "0.png").read_bytes()
                )
            ),
            r"has classes \['bird'\] that .*train' lacks",
        ),
        (
            lambda root: (
                shutil.rmtree(root / "train" / "dog") or shutil.rmtree(root / "test" / "dog")
            ),
            "has 1 class: need 2 or more",
        ),
        (
            lambda root: [p.unlink() for p in (root / "train" / "dog").iterdir()],
            "Found no valid file for the classes dog",
        ),
    ],
)
def test_a_bad_image_folder_is_named_before_any_work(tmp_path, damage, message):
    root = write_image_folder(tmp_path)
    damage(root)
    with pytest.raises((DatasetUnavailable, ValueError), match=message):
        data_shape("image_folder", root=str(root))


def test_an_unreadable_image_is_named(tmp_path):
    root = write_image_folder(tmp_path)
    (root / "train" / "cat" / "0.png").write_bytes(b"not an image")
    data_shape("image_folder", root=str(root))  # the listing alone cannot tell
    with pytest.raises(
        DatasetUnavailable,
        match=r"image folder .*train': '.*cat/0\.png' cannot be read as an image \(UnidentifiedImageError\); replace or",
    ):
        prepare("image_folder", root=str(root))


def test_image_folder_statistics_must_match_the_channels(tmp_path):
    root = write_image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"mean has 3 values, not one per channel \(1\)"):
        data_shape("image_folder", root=str(root), channels=1, mean=[0.5] * 3, std=[0.2])
    with pytest.raises(ValueError, match="give both mean and std"):
        data_shape("image_folder", root=str(root), mean=[0.5] * 3)
