"""``python -m minires train``: train a model (default: ResNet-20 on the bundled digits) with the
paper's recipe (sec. 3.4 and 4.2), into a run folder that ``--resume`` continues exactly."""
import json
import os
import sys

from .. import backend, data, io, models, optim, train
from . import options

HELP = "train a model (default: resnet20 on the bundled digits)"


def add_arguments(parser):
    parser.add_argument("--model", default=None, choices=sorted(models.BUILDERS), metavar="MODEL",
                        help="resnet20/32/44/56/110, plain20/..., resnet18/... (default: resnet20)")
    options.add_data(parser, default=None)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default: {train.DEFAULTS['digits'][0]} for digits, {train.DEFAULTS['cifar10'][0]} for cifar10")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default: {train.DEFAULTS['digits'][1]} for digits, {train.DEFAULTS['cifar10'][1]} for cifar10")
    parser.add_argument("--lr", type=float, default=None, help="initial learning rate (default: 0.1)")
    parser.add_argument("--momentum", type=float, default=None, help="default: 0.9")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: 1e-4")
    parser.add_argument("--milestones", type=int, nargs="+", default=None, metavar="EPOCH",
                        help="epochs at which the lr is divided by 10 (default: 50%% and 75%% of --epochs)")
    parser.add_argument("--warmup", type=float, nargs="?", const=0.01, default=None, metavar="LR",
                        help="the paper's ResNet-110 warm-up: train at LR (default 0.01) until the "
                             "training error is below 80%%, then at --lr")
    options.add_device(parser)
    options.add_out(parser, None, "output folder (default: runs/MODEL-DATA)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    options.add_seed(parser, default=None)


def _settings(args):
    """The run's settings: the explicit options, then (on --resume) the saved run's, then the defaults."""
    given = {k: getattr(args, k) for k in train.RUN_SETTINGS + ("epochs",)}
    out = options.check_out(args.out or f"runs/{given['model'] or 'resnet20'}-{given['data'] or 'digits'}")
    config_path = os.path.join(out, "config.json")
    if args.resume:
        if not os.path.exists(config_path):
            raise SystemExit(f"--resume: no run to continue in {out} (no config.json); pass the --out of the run")
        with open(config_path) as f:
            saved = json.load(f)
        changed = [f"--{k.replace('_', '-')} {given[k]} (the run has {saved[k]})"
                   for k in train.RUN_SETTINGS if given[k] is not None and given[k] != saved[k]]
        if changed:
            raise SystemExit("--resume continues a run with its own settings; these differ: " + ", ".join(changed))
        s = {**saved, "epochs": saved["epochs"] if given["epochs"] is None else given["epochs"]}
        _check(s, args.device)
        return s, out
    name = given["data"] or "digits"
    epochs, batch_size, lr = train.DEFAULTS[name]
    s = {"model": "resnet20", "data": name, "epochs": epochs, "batch_size": batch_size, "lr": lr,
         "momentum": 0.9, "weight_decay": 1e-4, "milestones": None, "warmup": None, "seed": 0}
    s.update({k: v for k, v in given.items() if v is not None})
    if s["milestones"] is None:
        s["milestones"] = train.default_milestones(s["epochs"])
    _check(s, args.device)
    if os.path.exists(os.path.join(out, train.CHECKPOINT)):
        print(f"note: {out} holds an earlier run; starting over (use --resume to continue it)")
    os.makedirs(out, exist_ok=True)
    with io.atomic_write(config_path, "w") as f:
        json.dump(s, f, indent=1)
    return s, out


def _check(s, device):
    """Every setting checked before anything is written or trained, each error naming its option."""
    if s["epochs"] < 1:
        raise SystemExit(f"--epochs must be >= 1, got {s['epochs']}")
    if s["batch_size"] < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {s['batch_size']}")
    if not s["lr"] > 0:
        raise SystemExit(f"--lr must be > 0, got {s['lr']}")
    if not 0 <= s["momentum"] < 1:
        raise SystemExit(f"--momentum must be in [0, 1), got {s['momentum']}")
    if not s["weight_decay"] >= 0:
        raise SystemExit(f"--weight-decay must be >= 0, got {s['weight_decay']}")
    if s["milestones"] != sorted(s["milestones"]):
        raise SystemExit(f"--milestones must be increasing epochs, got {s['milestones']}")
    if s["warmup"] is not None and not s["warmup"] > 0:
        raise SystemExit(f"--warmup must be > 0, got {s['warmup']}")
    options.check_device(device)


def main(args):
    s, out = _settings(args)
    train_set, test_set = options.load_data(s["data"], args.data_dir, args.download)
    backend.manual_seed(s["seed"])
    model = models.get_model(s["model"], num_classes=train_set.num_classes, in_channels=train_set.images.shape[1])
    train_loader = data.DataLoader(train_set, s["batch_size"], shuffle=True, seed=s["seed"],
                                   augment=data.paper_augment(train_set))
    test_loader = data.DataLoader(test_set, 256)
    optimizer = optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    scheduler = optim.MultiStepLR(optimizer, s["milestones"])
    n_params = sum(p.size for p in model.parameters())
    print(f"{s['model']} ({n_params:,} parameters) on {s['data']}: {len(train_set)} training and "
          f"{len(test_set)} test images, {s['epochs']} epochs of batch {s['batch_size']}, lr {s['lr']} "
          f"/10 at epochs {s['milestones']}, device {args.device}")
    try:
        history = train.fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler,
                      epochs=s["epochs"], device=args.device, out_dir=out, resume=args.resume, warmup=s["warmup"])
    except train.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    last = history[-1]
    print(f"test accuracy after {last['epoch']} epochs: {1 - last['test_error']:.2%} "
          f"(test loss {last['test_loss']:.4f}, {sum(r['seconds'] for r in history):.0f} s of training)")
    return 0
