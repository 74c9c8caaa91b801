"""The paper's ImageNet recipe (sec. 3.4): ImageFolder on images this test writes, the scale, crop,
colour and mean transforms, 10-crop and multi-scale testing, top-k error, the plateau schedule.

Expected values come from the arrays the test wrote, from hand-worked cases, or from NumPy
(np.cov, np.linalg.eigh, argsort), never from the code under test."""
import os

import numpy as np
import pytest
from PIL import Image

from minires import data, models, nn, optim, train
from minires.autograd import Tensor
from minires.data import imagefolder
from minires.data import transforms as T


# -- a folder of images, written here ------------------------------------------------------------

def write_folder(root, rng, sizes=None):
    """root/{apple,cherry,banana}/..., PNG and JPEG, odd sizes, one grayscale PNG; returns
    {path: array}."""
    written = {}
    sizes = sizes or {"cherry": [(13, 21), (30, 17)], "apple": [(25, 25), (19, 40), (33, 14)],
                      "banana": [(16, 29)]}
    for cls, shapes in sizes.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i, (h, w) in enumerate(shapes):
            # Smooth colour ramps (JPEG keeps them well), a different one in each channel.
            ramp = rng.uniform(-3, 3, (2, 3)) * np.stack(np.mgrid[:h, :w], axis=-1)[..., None]
            pixels = np.clip(rng.uniform(60, 190, 3) + ramp.sum(axis=2), 0, 255).astype(np.uint8)
            path = os.path.join(root, cls, f"{i}.{'png' if i % 2 == 0 else 'jpg'}")
            Image.fromarray(pixels).save(path)
            written[path] = pixels
    gray = rng.integers(0, 256, (11, 23), dtype=np.uint8)
    os.makedirs(os.path.join(root, "banana"), exist_ok=True)
    path = os.path.join(root, "banana", "gray.png")
    Image.fromarray(gray).save(path)
    written[path] = gray
    return written


@pytest.fixture
def folder(tmp_path):
    written = write_folder(tmp_path / "train", np.random.default_rng(0))
    return data.ImageFolder(tmp_path / "train"), written


def test_image_folder_sorts_classes_into_labels_and_reads_every_file(folder):
    ds, written = folder
    assert ds.classes == ["apple", "banana", "cherry"] and ds.num_classes == 3
    assert len(ds) == len(written) == 7
    for i, path in enumerate(ds.files):
        image, label = ds[i]
        assert label == ds.classes.index(os.path.basename(os.path.dirname(path)))
        assert image.dtype == np.uint8 and image.shape[0] == 3
        want = written[path]
        if want.ndim == 2:  # grayscale -> RGB, g -> (g, g, g)
            want = np.repeat(want[:, :, None], 3, axis=2)
        assert image.shape[1:] == want.shape[:2]
        if path.endswith(".png"):  # lossless: the very pixels
            np.testing.assert_array_equal(image.transpose(1, 2, 0), want)
        else:  # JPEG is lossy, but close on smooth images
            assert np.abs(image.transpose(1, 2, 0).astype(int) - want).mean() < 4


def test_image_folder_decodes_only_when_an_image_is_read(folder, monkeypatch):
    ds, _ = folder
    reads = []
    real = imagefolder.read_image
    monkeypatch.setattr(imagefolder, "read_image", lambda path: reads.append(path) or real(path))
    again = data.ImageFolder(ds.root)
    assert reads == []  # listing (and checking headers) decodes nothing
    loader = data.DataLoader(again, 3, transform=T.CenterCrop(11), normalize=None)
    next(iter(loader))
    assert reads == again.files[:3]


def test_validation_folder_takes_the_training_classes(tmp_path, folder):
    train, _ = folder
    write_folder(tmp_path / "val", np.random.default_rng(1), {"cherry": [(20, 20)]})
    val = data.ImageFolder(tmp_path / "val", classes=train.classes)
    # banana/gray.png, cherry/0.png
    assert val.classes == train.classes and val.labels.tolist() == [1, 2]
    with pytest.raises(ValueError, match="not among the classes"):
        data.ImageFolder(tmp_path / "val", classes=["apple"])


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        data.ImageFolder(tmp_path / "empty")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        data.ImageFolder(tmp_path / "missing")
    root = tmp_path / "set"
    write_folder(root, np.random.default_rng(2))
    (root / "durian").mkdir()
    with pytest.raises(ValueError, match=r"durian has no images"):
        data.ImageFolder(root)
    os.rmdir(root / "durian")
    (root / "apple" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"apple[/\\]notes\.txt is not a JPEG or PNG"):
        data.ImageFolder(root)
    os.remove(root / "apple" / "notes.txt")
    (root / "apple" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    assert len(data.ImageFolder(root)) == 7


def test_corrupt_files_are_reported_by_name(tmp_path):
    root = tmp_path / "set"
    write_folder(root, np.random.default_rng(3))
    garbage = root / "cherry" / "broken.jpg"
    garbage.write_bytes(b"this is not a JPEG at all" * 10)
    with pytest.raises(ValueError, match=r"cherry[/\\]broken\.jpg is not an image"):
        data.ImageFolder(root)
    unchecked = data.ImageFolder(root, verify=False)  # then it is found when read
    with pytest.raises(imagefolder.ImageReadError, match=r"cannot decode .*broken\.jpg"):
        unchecked[unchecked.files.index(str(garbage))]
    # A JPEG cut short has a good header: it passes the check and fails, by name, when decoded.
    whole = (root / "apple" / "1.jpg").read_bytes()
    garbage.write_bytes(whole[:len(whole) - 10])  # the end of the entropy-coded data
    ds = data.ImageFolder(root)
    with pytest.raises(imagefolder.ImageReadError, match=r"cannot decode .*broken\.jpg"):
        ds[ds.files.index(str(garbage))]


# -- the loader's per-image transform -------------------------------------------------------------

def test_loader_runs_the_per_image_transform_then_batches(folder):
    ds, written = folder
    loader = data.DataLoader(ds, 3, shuffle=True, seed=0,
                             transform=T.Compose([T.ResizeShorter(12), T.CenterCrop(10)]),
                             normalize=None)
    seen = []
    for x, y in loader:
        assert x.shape[1:] == (3, 10, 10) and x.dtype == np.float32
        seen += y.tolist()
    assert sorted(seen) == sorted(ds.labels.tolist()) and len(loader) == 3


def test_loader_explains_what_an_image_folder_needs(folder):
    ds, _ = folder
    with pytest.raises(TypeError, match="per-image transform"):
        data.DataLoader(ds, 2)
    with pytest.raises(TypeError, match="normalize=None"):
        data.DataLoader(ds, 2, transform=T.CenterCrop(8))
    loader = data.DataLoader(ds, 7, transform=T.ResizeShorter(8), normalize=None)
    with pytest.raises(ValueError, match="one size"):
        next(iter(loader))


def test_recipe_loader_is_reproducible_from_its_seed(folder):
    ds, _ = folder
    recipe = T.ImageNetRecipe(ds, image_size=8)

    def batches(seed):
        loader = data.DataLoader(ds, 4, shuffle=True, seed=seed, transform=recipe.train_transform,
                                 augment=recipe.train_augment, normalize=None)
        return [x for x, _ in loader]

    for a, b in zip(batches(5), batches(5)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batches(5)[0], batches(6)[0])


# -- transforms against hand-computed results ----------------------------------------------------

def test_random_crop_with_a_size_cuts_a_window_of_the_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 2, 9, 12), dtype=np.uint8)
    crop = T.RandomCrop(size=5)
    assert crop.padding == 0 and T.RandomCrop().padding == 4  # the CIFAR default is unchanged
    out = crop(images, rng)
    assert out.shape == (300, 2, 5, 5)
    offsets = set()
    for image, window in zip(images, out):
        found = [(dy, dx) for dy in range(9 - 5 + 1) for dx in range(12 - 5 + 1)
                 if np.array_equal(image[:, dy:dy + 5, dx:dx + 5], window)]
        assert found
        offsets.update(found)
    # every offset, 0..H-5 and 0..W-5, is drawn
    assert offsets == {(dy, dx) for dy in range(5) for dx in range(8)}
    with pytest.raises(ValueError, match="does not fit"):
        T.RandomCrop(size=10)(images, rng)


@pytest.mark.parametrize("shape, size, want", [((30, 45), 20, (20, 30)), ((45, 30), 20, (30, 20)),
                                               ((7, 10), 14, (14, 20)), ((12, 12), 5, (5, 5)),
                                               ((10, 33), 6, (6, 20))])
def test_resize_shorter_sets_the_shorter_side_and_keeps_the_aspect_ratio(shape, size, want):
    # longer side = round(L * size / shorter side): 45*20/30 = 30, 10*14/7 = 20,
    # 33*6/10 = 19.8 -> 20
    images = np.full((2, 3) + shape, 77, dtype=np.uint8)
    out = T.resize_shorter(images, size)
    assert out.shape == (2, 3) + want and out.dtype == np.uint8
    assert (out == 77).all()  # a constant image stays constant under an interpolating filter


def test_resize_of_rgb_equals_resizing_each_channel_alone():
    rgb = np.random.default_rng(1).integers(0, 256, (1, 3, 17, 26), dtype=np.uint8)
    planes = [T.resize_shorter(rgb[:, c:c + 1], 11) for c in range(3)]  # the one-channel path
    np.testing.assert_array_equal(T.resize_shorter(rgb, 11), np.concatenate(planes, axis=1))


def test_random_resize_shorter_draws_every_size_in_its_range():
    rng = np.random.default_rng(0)
    image = np.zeros((1, 3, 10, 15), dtype=np.uint8)
    sides = {T.RandomResizeShorter(12, 15)(image, rng).shape[2] for _ in range(60)}
    assert sides == {12, 13, 14, 15}
    with pytest.raises(ValueError, match="min_size <= max_size"):
        T.RandomResizeShorter(480, 256)


def test_center_crop_and_ten_crop_take_the_hand_computed_windows():
    H, W, s = 6, 9, 4
    image = np.arange(2 * H * W, dtype=np.int64).reshape(1, 2, H, W)
    # (6-4)//2 = 1, (9-4)//2 = 2
    np.testing.assert_array_equal(T.CenterCrop(s)(image), image[:, :, 1:5, 2:6])
    crops = T.TenCrop(s)(image)
    assert crops.shape == (1, 10, 2, s, s)
    # top-left, top-right, bottom-left, bottom-right, centre
    windows = [image[0, :, 0:4, 0:4], image[0, :, 0:4, 5:9], image[0, :, 2:6, 0:4],
               image[0, :, 2:6, 5:9], image[0, :, 1:5, 2:6]]
    for k, window in enumerate(windows):
        np.testing.assert_array_equal(crops[0, k], window)
        np.testing.assert_array_equal(crops[0, 5 + k], window[:, :, ::-1])  # and their mirrors


def test_subtract_mean_is_the_training_mean_per_pixel_or_per_channel():
    images = np.random.default_rng(2).integers(0, 256, (20, 3, 4, 5), dtype=np.uint8)
    per_pixel = T.SubtractMean.fit(images)
    np.testing.assert_allclose(per_pixel.mean, images.mean(axis=0), rtol=1e-6)
    streamed = T.SubtractMean.fit(iter([images[:7], images[7:]]))  # batch by batch, the same mean
    np.testing.assert_allclose(streamed.mean, per_pixel.mean, rtol=1e-6)
    per_channel = T.SubtractMean.fit(images, per="channel")
    np.testing.assert_allclose(per_channel.mean[:, 0, 0], images.mean(axis=(0, 2, 3)), rtol=1e-6)
    out = per_pixel(images[:2])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images[:2] - images.mean(axis=0), atol=1e-4)


def constructed_pixels(n=40000, seed=0):
    """RGB pixels (in [0, 1] units) with a known covariance Q diag(lam) Q^T, quantised to uint8."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(np.array([[1.0, 0.2, 0.1], [0.9, -0.5, 0.3], [0.8, 0.4, -0.6]]))
    lam = np.array([0.02, 0.005, 0.001])
    z = rng.standard_normal((3, n))
    u = 0.5 + Q @ (np.sqrt(lam)[:, None] * z)
    images = np.clip(np.round(u * 255), 0, 255).astype(np.uint8).reshape(3, n // 100, 1, 100)
    return np.ascontiguousarray(images.transpose(1, 0, 2, 3)), Q, lam  # (n / 100, 3, 1, 100)


def test_pca_lighting_eigenvectors_are_those_of_the_pixel_covariance():
    images, Q, lam = constructed_pixels()
    lighting = T.PCALighting.fit(images, alphastd=0.1)
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    want_val, want_vec = np.linalg.eigh(np.cov(pixels))  # NumPy's own covariance and eigen-solver
    np.testing.assert_allclose(lighting.eigval, want_val[::-1], rtol=1e-6)
    for i in range(3):  # eigenvectors are defined up to sign
        assert abs(abs(lighting.eigvec[:, i] @ want_vec[:, 2 - i]) - 1) < 1e-6
        # and they are the constructed axes
        assert abs(abs(lighting.eigvec[:, i] @ Q[:, i]) - 1) < 1e-3
    np.testing.assert_allclose(lighting.eigval, lam, rtol=0.05)


def test_pca_lighting_shifts_each_image_along_the_eigenvectors():
    _, Q, lam = constructed_pixels()
    lighting = T.PCALighting(0.1, lam, Q)
    images = np.full((20000, 3, 2, 2), 100, dtype=np.uint8)
    out = lighting(images, np.random.default_rng(0))
    assert out.dtype == np.float32
    shift = out - 100.0
    # one shift per image
    np.testing.assert_allclose(shift, shift[:, :, :1, :1] + np.zeros_like(shift), atol=1e-4)
    # The shifts, in [0, 1] units, are sum_i a_i lam_i p_i with a_i ~ N(0, 0.1): their covariance is
    # Q diag((0.1 lam)^2) Q^T.
    cov = np.cov(shift[:, :, 0, 0].T / 255.0)
    want = Q @ np.diag((0.1 * lam) ** 2) @ Q.T
    np.testing.assert_allclose(cov, want, atol=0.05 * (0.1 * lam[0]) ** 2)
    assert T.PCALighting(0.0, lam, Q)(images, np.random.default_rng(0)).max() == 100


def test_recipe_sizes_scale_the_papers_with_the_crop():
    assert T.imagenet_sizes(224) == {"crop": 224, "train_sides": (256, 480), "test_side": 256,
                                     "multiscale_sides": (224, 256, 384, 480, 640)}
    # 256*64/224 = 73.1, 480*64/224 = 137.1, 384*64/224 = 109.7, 640*64/224 = 182.9
    assert T.imagenet_sizes(64) == {"crop": 64, "train_sides": (73, 137), "test_side": 73,
                                    "multiscale_sides": (64, 73, 110, 137, 183)}


def test_recipe_statistics_come_from_the_training_images(folder):
    ds, written = folder
    recipe = T.ImageNetRecipe(ds, image_size=8, mean="channel")
    crops = np.stack([T.CenterCrop(8)(T.resize_shorter(ds[i][0][None], 9))[0]
                      for i in range(len(ds))])
    np.testing.assert_allclose(recipe.mean.mean[:, 0, 0], crops.mean(axis=(0, 2, 3)), rtol=1e-5)
    pixels = crops.transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(recipe.lighting.eigval, np.linalg.eigvalsh(np.cov(pixels))[::-1],
                               rtol=1e-6)
    # Without lighting, training and testing batches are the images less the training mean (a
    # constant image looks the same mirrored).
    plain = T.ImageNetRecipe(ds, image_size=8, lighting=None)
    flat = np.full((2, 3, 8, 8), 90, dtype=np.uint8)
    for augment in (plain.train_augment, plain.test_augment):
        want = np.broadcast_to(90.0 - plain.mean.mean, flat.shape)
        np.testing.assert_allclose(augment(flat, np.random.default_rng(0)), want, atol=1e-4)


# -- top-k error, 10-crop and multi-scale testing --------------------------------------------------

def test_topk_errors_on_known_logits():
    scores = np.array([[9, 1, 2, 3, 4, 5, 6],   # label 0: the top score
                       [9, 8, 7, 6, 5, 4, 3],   # label 4: 5th highest
                       [9, 8, 7, 6, 5, 4, 3],   # label 5: 6th highest
                       [1, 1, 1, 1, 1, 1, 1]],  # label 3: all tied, counts as top-1
                      dtype=np.float32)
    labels = np.array([0, 4, 5, 3])
    errors = train.topk_errors(scores, labels, ks=(1, 5, 6))
    assert errors == {1: 0.5, 5: 0.25, 6: 0.0}
    # Against an argsort oracle on untied scores.
    rng = np.random.default_rng(0)
    scores, labels = rng.standard_normal((200, 10)), rng.integers(0, 10, 200)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    want = 1 - np.mean([labels[n] in top5[n] for n in range(200)])
    assert train.topk_errors(scores, labels, ks=(5,))[5] == pytest.approx(want)


class FirstPixel(nn.Module):
    """A stand-in net: the logits of an image are its first pixel's channel values."""

    def forward(self, x):
        return Tensor(x.data[:, :, 0, 0].copy())


def test_ten_crop_evaluation_averages_softmax_over_the_crops():
    # Image 0: one crop says class 0 with logit 20, two say class 1 with logit 2. Averaged logits
    # would pick class 0 (6.67 vs 1.33); averaged softmax picks class 1 (0.587 vs 0.413). Image 1:
    # averaged logits would pick its label, 0 (1 vs 0.67); averaged softmax does not.
    x = np.zeros((2, 3, 2, 1, 1), dtype=np.float32)
    x[0, :, :, 0, 0] = [[20, 0], [0, 2], [0, 2]]
    x[1, :, :, 0, 0] = [[0, 1], [0, 1], [3, 0]]
    y = np.array([1, 0])
    result = train.evaluate(FirstPixel(), [(x, y)])

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    p = [np.mean([softmax(x[b, v, :, 0, 0].astype(np.float64)) for v in range(3)], axis=0)
         for b in range(2)]
    assert p[0].argmax() == 1 and p[1].argmax() == 1  # image 1 (label 0): 0.497 vs 0.503, wrong
    assert result.error == 0.5 and result.images == 2
    assert result.top5_error == 0.0  # two classes: both are among the top 5
    assert result.loss == pytest.approx(-(np.log(p[0][1]) + np.log(p[1][0])) / 2, rel=1e-5)


def tiny_resnet(num_classes=3):
    return models.ResNet(models.BasicBlock, [1, 1], num_classes=num_classes, stem="imagenet",
                         widths=(4, 8))


@pytest.mark.parametrize("shape", [(16, 16), (24, 20), (37, 29)])
def test_global_average_pool_makes_the_net_fully_convolutional(shape):
    model = tiny_resnet().eval()
    x = np.random.default_rng(0).standard_normal((2, 3) + shape).astype(np.float32)
    logits = model(Tensor(x)).data
    assert logits.shape == (2, 3)
    # The trunk's feature map, then the fc applied at every position, averaged over positions.
    f = model.maxpool(model.relu(model.bn1(model.conv1(Tensor(x)))))
    for stage in model.stages():
        f = stage(f)
    f = f.data.astype(np.float64)
    W, b = model.fc.weight.data.astype(np.float64), model.fc.bias.data.astype(np.float64)
    per_position = np.einsum("kc,nchw->nkhw", W, f) + b[None, :, None, None]
    np.testing.assert_allclose(logits, per_position.mean(axis=(2, 3)), rtol=1e-4, atol=1e-5)


def test_multiscale_with_one_side_equals_one_view_through_the_loader(folder):
    ds, _ = folder
    model = tiny_resnet()
    mean = T.SubtractMean(np.array([120.0, 110.0, 100.0]).reshape(3, 1, 1))
    single = train.evaluate_multiscale(model, ds, [12], mean, flip=False)
    loader = data.DataLoader(ds, 1, transform=T.ResizeShorter(12), augment=mean, normalize=None)
    assert single == pytest.approx(train.evaluate(model, loader))
    both = train.evaluate_multiscale(model, ds, [12, 20], mean)
    assert both.images == 7 and 0 <= both.error <= 1 and both.loss != single.loss


# -- the plateau schedule -------------------------------------------------------------------------

class FakeOptimizer:
    def __init__(self, lr):
        self.lr = lr


def test_plateau_divides_by_ten_after_patience_epochs_without_improvement():
    opt = FakeOptimizer(0.1)
    sched = optim.ReduceLROnPlateau(opt, patience=2, threshold=0.01)
    # best 0.5; 0.4 improves; 0.398 is within 1% of 0.4: no improvement; bad epochs 1, 2, 3 -> /10
    errors = [0.5, 0.4, 0.398, 0.45, 0.41, 0.3, 0.31, 0.32, 0.33, 0.2]
    lrs = []
    for e in errors:
        sched.step(e)
        lrs.append(opt.lr)
    want = [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001]
    np.testing.assert_allclose(lrs, want)


def test_plateau_state_dict_resumes_the_same_steps():
    errors = [0.5, 0.49, 0.49, 0.49, 0.3, 0.3, 0.3, 0.3, 0.3]
    opt = FakeOptimizer(0.1)
    sched = optim.ReduceLROnPlateau(opt, patience=1)
    lrs = []
    for e in errors:
        sched.step(e)
        lrs.append(opt.lr)
    opt2 = FakeOptimizer(0.1)
    first = optim.ReduceLROnPlateau(opt2, patience=1)
    for e in errors[:3]:
        first.step(e)
    opt3 = FakeOptimizer(opt2.lr)  # the lr itself is saved with the optimizer
    second = optim.ReduceLROnPlateau(opt3, patience=1)
    second.load_state_dict(first.state_dict())
    resumed = []
    for e in errors[3:]:
        second.step(e)
        resumed.append(opt3.lr)
    np.testing.assert_allclose(resumed, lrs[3:])


def test_plateau_rejects_bad_arguments_by_name():
    for kwargs, match in (({"factor": 1.5}, "factor"), ({"patience": -1}, "patience"),
                          ({"patience": 1.5}, "patience"), ({"threshold": 1}, "threshold")):
        with pytest.raises(ValueError, match=match):
            optim.ReduceLROnPlateau(FakeOptimizer(0.1), **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        optim.ReduceLROnPlateau(FakeOptimizer(0.1)).step(float("nan"))


# -- training with the recipe ---------------------------------------------------------------------

def recipe_loaders(ds, val, size=8, seed=0):
    recipe = T.ImageNetRecipe(ds, image_size=size)
    train_loader = data.DataLoader(ds, 4, shuffle=True, seed=seed, transform=recipe.train_transform,
                                   augment=recipe.train_augment, normalize=None)
    test_loader = data.DataLoader(val, 4, transform=recipe.ten_crop, augment=recipe.test_augment,
                                  normalize=None)
    return train_loader, test_loader


def test_fit_with_the_plateau_schedule_resumes_exactly(tmp_path, folder, monkeypatch):
    from minires import backend
    # the curves are slow to draw
    monkeypatch.setattr(train.history, "plot_history", lambda history, path: None)
    ds, _ = folder
    write_folder(tmp_path / "val", np.random.default_rng(4),
                 {"apple": [(20, 18)], "cherry": [(15, 22)]})
    val = data.ImageFolder(tmp_path / "val", classes=ds.classes)

    watched = []

    class Watched(optim.ReduceLROnPlateau):
        def step(self, error):
            watched.append(error)
            super().step(error)

    def run(out, epochs_list):
        backend.manual_seed(0)
        model = tiny_resnet()
        opt = optim.SGD(model.parameters(), lr=0.1)
        sched = Watched(opt, patience=0)
        loaders = recipe_loaders(ds, val)
        for i, epochs in enumerate(epochs_list):
            history = train.fit(model, *loaders, optimizer=opt, scheduler=sched, epochs=epochs,
                                out_dir=out, resume=i > 0, progress=False, top5=True)
            if i + 1 < len(epochs_list):  # a fresh process: new objects, state from the checkpoint
                backend.manual_seed(123)
                model = tiny_resnet()
                opt = optim.SGD(model.parameters(), lr=0.1)
                sched = optim.ReduceLROnPlateau(opt, patience=0)
                loaders = recipe_loaders(ds, val)
        return history, model

    whole, model_a = run(tmp_path / "a", [3])
    assert watched == [row["test_error"] for row in whole]  # the schedule watches the test error
    parts, model_b = run(tmp_path / "b", [1, 3])
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in parts]
    assert all("test_top5_error" in row for row in whole)
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def run_minires(*argv, cwd):
    import subprocess
    import sys
    env = {**os.environ, "MINIRES_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minires", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_command_runs_the_recipe_on_an_image_folder(tmp_path):
    import json
    rng = np.random.default_rng(5)
    write_folder(tmp_path / "set" / "train", rng)
    write_folder(tmp_path / "set" / "val", rng, {"apple": [(14, 20)], "cherry": [(22, 16)]})
    out = tmp_path / "run"
    done = run_minires("train", "--data", "imagefolder", "--data-dir", str(tmp_path / "set"),
                       "--model", "resnet20", "--image-size", "12", "--epochs", "1",
                       "--batch-size", "4", "--out", str(out), "--multiscale", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # 256*12/224 = 13.7, 480*12/224 = 25.7
    assert "top-5 error" in done.stdout and "[14, 26]" in done.stdout
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and 0 <= history[0]["test_top5_error"] <= history[0]["test_error"] <= 1
    assert (out / "history.csv").read_text().splitlines()[0].endswith("test_top5_error")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"] == "plateau" and config["image_size"] == 12
    assert config["batch_size"] == 4
    multiscale = json.loads((out / "multiscale.json").read_text())
    assert multiscale["sides"] == [12, 14, 21, 26, 34] and multiscale["images"] == 3
    assert list(multiscale) == ["loss", "images", "top1_error", "top5_error", "sides"]
    assert 0 <= multiscale["top5_error"] <= multiscale["top1_error"] <= 1


def test_train_command_on_a_missing_folder_fails_in_one_line(tmp_path):
    done = run_minires("train", "--data", "imagefolder", "--data-dir", str(tmp_path / "nowhere"),
                       "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "train/<class>/<image>" in done.stderr
