"""Modules: registration, traversal, devices, state dicts (torchvision's names), saving and
loading."""

import os

import numpy as np
import pytest

import minires as mr
from minires import io, models, nn


def torchvision_state_shapes(depth):
    """{key: shape} of torchvision's resnet{depth} state dict, written out from its layer rules.

    Independent of minires: stages of [2,2,2,2] / [3,4,6,3] / [3,4,23,3] / [3,8,36,3] blocks,
    planes 64/128/256/512, basic blocks (expansion 1) for 18/34, bottlenecks (4) beyond,
    a downsample (1x1 conv + BN) on the first block of a stage whose shape changes.
    """
    blocks = {
        18: [2, 2, 2, 2],
        34: [3, 4, 6, 3],
        50: [3, 4, 6, 3],
        101: [3, 4, 23, 3],
        152: [3, 8, 36, 3],
    }[depth]
    bottleneck = depth >= 50
    expansion = 4 if bottleneck else 1
    shapes = {}

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (n, planes) in enumerate(zip(blocks, [64, 128, 256, 512]), 1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            if bottleneck:
                convs = [
                    (planes, inplanes, 1, 1),
                    (planes, planes, 3, 3),
                    (planes * 4, planes, 1, 1),
                ]
            else:
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            for i, shape in enumerate(convs, 1):
                shapes[f"{p}.conv{i}.weight"] = shape
                bn(f"{p}.bn{i}", shape[0])
            stride = 2 if (b == 0 and stage > 1) else 1
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (1000, 512 * expansion)
    shapes["fc.bias"] = (1000,)
    return shapes


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_state_dict_keys_and_shapes_equal_torchvision(depth):
    state = models.get_model(f"resnet{depth}").state_dict()
    expected = torchvision_state_shapes(depth)
    assert set(state) == set(expected)
    assert {k: v.shape for k, v in state.items()} == expected


def test_torchvision_num_batches_tracked_is_accepted_and_ignored():
    model = models.resnet18()
    state = model.state_dict()
    state["bn1.num_batches_tracked"] = np.array(7)
    state["layer1.0.bn1.num_batches_tracked"] = np.array(7)
    model.load_state_dict(state)


def test_parameters_come_in_registration_order_without_duplicates():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(2, 3)
            self.second = nn.Linear(3, 4)
            self.again = self.first  # shared module: its parameters are listed once

        def forward(self, x):
            return self.second(self.first(x))

    m = Shared()
    assert [n for n, _ in m.named_parameters()] == [
        "first.weight",
        "first.bias",
        "second.weight",
        "second.bias",
    ]
    assert [n for n, _ in m.named_modules()] == ["", "first", "second"]


def test_train_eval_reach_every_submodule():
    model = models.resnet20()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_clears_every_gradient():
    model = nn.Sequential(nn.Linear(3, 2))
    model(mr.Tensor(np.ones((1, 3), np.float32))).sum().backward()
    assert model[0].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_dtype_casts_parameters_and_buffers():
    bn = nn.BatchNorm2d(3).double()
    assert bn.weight.dtype == np.float64 and bn.running_var.dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        bn.to(dtype=np.int32)


def test_module_to_gpu_and_back(device):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).to(device)
    assert all(p.device == device for p in model.parameters())
    x = mr.Tensor(np.ones((2, 1, 4, 4), np.float32)).to(device)
    assert model(x).device == device
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


# -- state dicts -----------------------------------------------------------------------------------


def test_state_dict_round_trip_through_a_file_reproduces_the_outputs(tmp_path):
    mr.manual_seed(0)
    a = models.resnet20()
    # move BN stats
    a(mr.Tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)))
    path = tmp_path / "r20.npz"
    io.save(a, path)
    mr.manual_seed(1)
    b = io.load(path, models.resnet20())
    x = mr.Tensor(np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32))
    with mr.no_grad():
        np.testing.assert_array_equal(a.eval()(x).data, b.eval()(x).data)
    assert [f for f in os.listdir(tmp_path)] == ["r20.npz"]  # no temporary left behind


def test_load_state_dict_rejects_missing_extra_and_misshapen_keys():
    model = models.resnet20()
    good = model.state_dict()
    missing = dict(good)
    del missing["layer2.0.conv1.weight"]
    with pytest.raises(KeyError, match="missing keys: layer2.0.conv1.weight"):
        model.load_state_dict(missing)
    extra = dict(good, **{"layer9.weight": np.zeros(3)})
    with pytest.raises(KeyError, match="unexpected keys: layer9.weight"):
        model.load_state_dict(extra)
    wrong = dict(good, **{"fc.weight": np.zeros((11, 64))})
    with pytest.raises(ValueError, match=r"fc.weight has shape \(11, 64\).*\(10, 64\)"):
        model.load_state_dict(wrong)
    before = model.fc.weight.data.copy()
    wrong["fc.bias"] = np.full(10, 5.0)
    with pytest.raises(ValueError):
        model.load_state_dict(wrong)
    np.testing.assert_array_equal(model.fc.weight.data, before)  # a failed load changes nothing
    assert not np.any(model.fc.bias.data == 5.0)
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["layer2.0.conv1.weight"]


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    # an object array is stored as a pickle
    np.savez(path, weights=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        io.load(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "ckpt.npz"
    io.save_arrays(path, {"a": np.arange(3)}, meta={"epoch": 1})
    with pytest.raises(TypeError):
        io.save_arrays(path, {"a": np.array([object()], dtype=object)})
    arrays, meta = io.load_arrays(path)
    np.testing.assert_array_equal(arrays["a"], np.arange(3))
    assert meta == {"epoch": 1}
    with pytest.raises(RuntimeError):
        with io.atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert io.load_arrays(path)[1] == {"epoch": 1}
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    with open(tmp_path / "plain", "wb") as f:
        f.write(b"x")
    with io.atomic_write(tmp_path / "atomic") as f:
        f.write(b"x")
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777  # noqa: E731
    assert mode("atomic") == mode("plain")


def test_module_attribute_errors_are_clear():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        nn.Linear(2, 2).nope
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        nn.Conv2d(0, 3, 3)
    with pytest.raises(ValueError, match=r"expected input \(N, 4, H, W\)"):
        nn.BatchNorm2d(4)(mr.Tensor(np.ones((2, 3, 2, 2), np.float32)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nn.Linear(0, 10), "in_features must be a positive int, got 0"),
        (lambda: nn.Linear(-3, 10), "in_features must be a positive int, got -3"),
        (lambda: nn.Linear(2.5, 10), "in_features must be a positive int, got 2.5"),
        (lambda: nn.Linear(4, 0), "out_features must be a positive int, got 0"),
        (lambda: nn.Linear(True, 3), "in_features must be a positive int, got True"),
        (lambda: nn.BatchNorm2d(0), "num_features must be a positive int"),
        (lambda: nn.BatchNorm2d(-2), "num_features must be a positive int"),
        (lambda: nn.BatchNorm2d(3.0), "num_features must be a positive int"),
        (lambda: nn.BatchNorm2d(3, eps=0), "eps must be > 0"),
        (lambda: nn.BatchNorm2d(3, momentum=1.5), r"momentum must be in \[0, 1\]"),
    ],
)
def test_layer_sizes_are_checked_when_the_layer_is_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layers_accept_numpy_integer_sizes():
    assert nn.Linear(np.int64(3), 2).weight.shape == (2, 3)
    assert nn.BatchNorm2d(np.int32(4)).running_mean.shape == (4,)
