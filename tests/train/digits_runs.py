"""Short training runs on a few bundled digits, shared by the training tests: a small net, its
loaders and optimizer built from a seed, and comparisons that ignore wall time."""
import os

import numpy as np

from minires import backend, data, models, optim, train

DIGITS = data.load_digits()


def small_net():
    """ResNet-8 at half width (8/16/32 channels): a digits epoch in a fraction of a second."""
    return models.ResNet(models.BasicBlock, [1, 1, 1], num_classes=10, stem="cifar", shortcut="A",
                         in_channels=1, widths=(8, 16, 32))


def subsets(n_train, n_test):
    rng = np.random.default_rng(0)
    train_set, test_set = DIGITS
    return (train_set.subset(rng.permutation(len(train_set))[:n_train]),
            test_set.subset(rng.permutation(len(test_set))[:n_test]))


def build(seed=0, n_train=256, n_test=128, lr=0.1, augment=True, milestones=(3,)):
    """Model, loaders, optimizer and schedule, all built from ``seed``."""
    train_set, test_set = subsets(n_train, n_test)
    backend.manual_seed(seed)
    model = small_net()
    train_loader = data.DataLoader(train_set, 32, shuffle=True, seed=seed,
                                   augment=data.paper_augment(train_set) if augment else None)
    test_loader = data.DataLoader(test_set, 128)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return model, train_loader, test_loader, opt, optim.MultiStepLR(opt, list(milestones))


def run(epochs, seed=0, out_dir=None, resume=False, warmup=0.01, on_epoch=None, **kw):
    """fit from ``seed``; returns (history, model's state dict)."""
    model, train_loader, test_loader, opt, sched = build(seed, **kw)
    history = train.fit(model, train_loader, test_loader, optimizer=opt, scheduler=sched,
                        epochs=epochs, out_dir=out_dir, resume=resume, warmup=warmup,
                        progress=False, on_epoch=on_epoch)
    return history, model.state_dict()


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def temp_files(folder):
    return [f for f in os.listdir(folder) if f.startswith(".tmp")]
