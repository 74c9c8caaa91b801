"""``python -m minires train``: train a model (default: ResNet-20 on the bundled digits) with the
paper's recipe (sec. 3.4 and 4.2), into a run folder that ``--resume`` continues exactly.

A run folder holds one run: ``config.json`` (the settings), ``checkpoint.npz`` (which records the
same settings), ``history.json``/``.csv`` and ``curves.png``. Every option is checked, and the data
loaded, before anything in the folder changes; a new run never starts over another one's
checkpoint unless ``--overwrite`` says so, and never in a folder another run is using (the folder
is locked while a run uses it). Ctrl-C, SIGTERM and SIGHUP stop it with one line that names the
epoch its checkpoint keeps and the command that continues it.
"""
import contextlib
import json
import os
import sys

from .. import backend, data, io, models, optim, train
from . import options

HELP = "train a model (default: resnet20 on the bundled digits)"
# The largest --image-size: 4.6 times the paper's 224-pixel crops (its sides scale with it).
MAX_IMAGE_SIZE = 1024


def _per_data(i):
    return ", ".join(f"{v[i]} for {k}" for k, v in train.DEFAULTS.items())


def add_arguments(parser):
    parser.add_argument("--model", default=None, choices=sorted(models.BUILDERS), metavar="MODEL",
                        help="resnet20/32/44/56/110, plain20/..., resnet18/... (default: resnet20)")
    options.add_data(parser, default=None, extra=("imagefolder",))
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help="default: " + _per_data(0))
    parser.add_argument("--batch-size", type=options.positive_int, default=None,
                        help="default: " + _per_data(1) + "; a last batch that would hold a single "
                             "image is skipped each epoch (batch norm in training needs a batch)")
    parser.add_argument("--lr", type=options.positive_float, default=None,
                        help="initial learning rate (default: 0.1)")
    parser.add_argument("--momentum", type=options.fraction, default=None,
                        help="in [0, 1) (default: 0.9)")
    parser.add_argument("--weight-decay", type=options.nonnegative_float, default=None,
                        help="default: 1e-4")
    parser.add_argument("--milestones", type=options.positive_int, nargs="+", default=None,
                        metavar="EPOCH",
                        help="increasing epochs below --epochs after which the lr is divided by 10 "
                             "(default: 50%% and 75%% of --epochs)")
    parser.add_argument("--warmup", type=options.positive_float, nargs="?", const=0.01,
                        default=None, metavar="LR",
                        help="the paper's ResNet-110 warm-up: train at LR (default 0.01) until the "
                             "training error is below 80%%, then at --lr")
    parser.add_argument("--schedule", default=None, choices=["multistep", "plateau"],
                        help="multistep: lr /10 after --milestones (sec. 4.2; default); plateau: "
                             "lr /10 when the test error has not improved for --patience epochs "
                             "(sec. 3.4; default for imagefolder)")
    parser.add_argument("--patience", type=options.nonnegative_int, default=None,
                        help="--schedule plateau: epochs without improvement before the lr is "
                             "divided (default: 5)")
    parser.add_argument("--image-size", type=options.at_most(options.positive_int, MAX_IMAGE_SIZE),
                        default=None, metavar="PIXELS",
                        help="imagefolder: the crop size, at most 1024; the paper's sizes scale "
                             "with it (default: 224, trained at shorter sides 256..480 and tested "
                             "at 256)")
    parser.add_argument("--ten-crop", action="store_true", default=None,
                        help="imagefolder: test with the standard 10 crops instead of the centre "
                             "crop (10x the test time)")
    parser.add_argument("--multiscale", action="store_true",
                        help="imagefolder: after training, also test fully-convolutionally at "
                             "shorter sides 224, 256, 384, 480, 640 (scaled by --image-size); "
                             "writes multiscale.json")
    options.add_device(parser)
    options.add_out(parser, None, "output folder (default: runs/MODEL-DATA)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an --out that holds another run, replacing it")
    options.add_seed(parser, default=None)
    options.add_progress(parser)


def _out(args):
    """The run folder: --out, or runs/MODEL-DATA."""
    return options.check_out(args.out or f"runs/{args.model or 'resnet20'}-{args.data or 'digits'}")


def _settings(args, out):
    """The run's settings, every one checked; nothing is written here.

    A new run takes the explicit options, then the defaults; ``--resume`` takes the checkpoint's
    (which must agree with the folder's config.json) and only lets ``--epochs`` change.
    """
    given = {k: getattr(args, k) for k in train.RUN_SETTINGS + ("epochs",)}
    name = given["data"] or "digits"
    checkpoint = os.path.join(out, train.CHECKPOINT)
    if args.resume and args.overwrite:
        raise SystemExit("--resume and --overwrite: continue the run in --out or replace it, "
                         "not both")
    if args.resume:
        s = _resumed_settings(given, out, checkpoint)
    else:
        if os.path.exists(checkpoint) and not args.overwrite:
            raise SystemExit(f"--out {out} holds another run ({checkpoint}): continue it with "
                             "--resume, choose a fresh --out, or pass --overwrite to replace it")
        epochs, batch_size, lr = train.DEFAULTS[name]
        s = {"model": "resnet20", "data": name, "epochs": epochs, "batch_size": batch_size,
             "lr": lr, "momentum": 0.9, "weight_decay": 1e-4, "milestones": None, "warmup": None,
             "seed": 0, "schedule": "plateau" if name == "imagefolder" else "multistep",
             "patience": 5, "image_size": 224 if name == "imagefolder" else None,
             "ten_crop": False}
        s.update({k: v for k, v in given.items() if v is not None})
        if s["milestones"] is None:
            s["milestones"] = train.default_milestones(s["epochs"])
    _check(s)
    options.check_device(args.device)
    return s


def _resumed_settings(given, out, checkpoint):
    if not os.path.exists(checkpoint):
        raise SystemExit(f"--resume: no run to continue in {out} (no {train.CHECKPOINT}); "
                         "pass the --out of the run")
    try:
        meta = train.read_checkpoint(checkpoint)
        saved = train.check_run_settings(checkpoint, train.saved_config(checkpoint, meta))
    except train.CheckpointError as e:
        raise SystemExit(f"--resume: {e}") from None
    missing = [k for k in train.RUN_SETTINGS + ("epochs",) if k not in saved]
    if missing:
        raise SystemExit(f"--resume: {checkpoint} was not written by the train command (its "
                         f"settings lack {', '.join(missing)}); start a fresh run")
    config_path = os.path.join(out, train.CONFIG)
    if os.path.exists(config_path):
        try:
            with open(config_path) as f:
                folder = json.load(f)
        except (OSError, ValueError) as e:
            raise SystemExit(f"--resume: cannot read {config_path} ({e})") from None
        except RecursionError:  # lists nested thousands deep
            raise SystemExit(f"--resume: cannot read {config_path} (nested too deep)") from None
        ours = isinstance(folder, dict)
        differ = [k for k in train.RUN_SETTINGS if not ours or folder.get(k) != saved[k]]
        if differ:
            raise SystemExit(
                f"--resume: {config_path} and {checkpoint} are from different runs ("
                + ", ".join(f"{k} {folder.get(k) if ours else '?'} vs {saved[k]}" for k in differ)
                + "); start over with --overwrite, or delete config.json to continue the "
                "checkpoint's run")
    changed = [f"--{k.replace('_', '-')} {given[k]} (the run has {saved[k]})"
               for k in train.RUN_SETTINGS if given[k] is not None and given[k] != saved[k]]
    if changed:
        raise SystemExit("--resume continues a run with its own settings; these differ: "
                         + ", ".join(changed))
    epochs = saved["epochs"] if given["epochs"] is None else given["epochs"]
    if epochs < meta["epoch"]:
        raise SystemExit(f"--epochs {epochs}: the run in {out} has already trained "
                         f"{meta['epoch']} epochs")
    return {**saved, "epochs": epochs}


def _check(s):
    """Checks that involve more than one option (each option's own range is checked as it is
    parsed)."""
    if s["data"] != "imagefolder" and (s["image_size"] is not None or s["ten_crop"]):
        raise SystemExit("--image-size and --ten-crop apply to --data imagefolder only")
    milestones = s["milestones"]
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise SystemExit(f"--milestones must be increasing epochs, got {milestones}")
    beyond = [m for m in milestones if not 0 < m < s["epochs"]]
    if beyond:
        raise SystemExit(f"--milestones {' '.join(map(str, milestones))}: each must be an epoch "
                         f"from 1 to {s['epochs'] - 1} (--epochs {s['epochs']}); the lr never "
                         "changes after the last epoch")


def _start(out, s, new_run):
    """Training starts: a new run clears the folder of another run's files; config.json is
    written."""
    try:
        os.makedirs(out, exist_ok=True)
        if new_run:
            for name in train.RUN_FILES:
                if os.path.exists(os.path.join(out, name)):
                    os.remove(os.path.join(out, name))
        with io.atomic_write(os.path.join(out, train.CONFIG), "w") as f:
            json.dump(s, f, indent=1)
    except OSError as e:
        raise SystemExit(f"--out {out}: cannot write {e.filename or out} ({e.strerror or e})") \
            from None


def _check_image_sizes(train_set, test_set, image_size, multiscale):
    """Every image, resized as the recipe resizes it (shorter side to its largest side), fits in
    ``imagefolder.MAX_PIXELS``: a 1 x 1,000,000 strip would become 37 x 37,000,000 pixels."""
    sizes = data.transforms.imagenet_sizes(image_size)
    side = max(sizes["train_sides"][1], sizes["test_side"],
               max(sizes["multiscale_sides"]) if multiscale else 0)
    limit = data.imagefolder.MAX_PIXELS
    for images in (train_set, test_set):
        path, (h, w), pixels = data.imagefolder.largest_resized(images, side)
        if pixels > limit:
            raise SystemExit(f"--image-size {image_size}: {path} is {w} x {h} pixels; resized to "
                             f"a shorter side of {side}, as the recipe does, it would have "
                             f"{pixels:,} pixels, more than the {limit:,} an image may have; "
                             "crop it or move it out of the folder")


def _kept(out, s, args):
    """What the folder still holds after a stop, and the command that continues it."""
    path = os.path.join(out, train.CHECKPOINT)
    try:
        epoch = train.read_checkpoint(path)["epoch"] if os.path.exists(path) else None
    except train.CheckpointError:
        epoch = None
    if not epoch:
        return f"no checkpoint was written in {out} yet, so there is nothing to resume"
    command = f"python -m minires train --resume --out {out} --epochs {s['epochs']}"
    if s["data"] != "digits" and args.data_dir != "data":
        command += f" --data-dir {args.data_dir}"
    if args.device != "cpu":
        command += f" --device {args.device}"
    return f"{path} holds epoch {epoch} and is intact; continue with: {command}"


def main(args):
    if args.multiscale and not args.resume and args.data != "imagefolder":
        raise SystemExit("--multiscale applies to --data imagefolder only")
    out = _out(args)
    # The folder is this run's from here on: a second run is refused, before it reads anything.
    with options.lock_out(out):
        s = _settings(args, out)
        if args.multiscale and s["data"] != "imagefolder":
            raise SystemExit("--multiscale applies to --data imagefolder only")
        try:
            return _train(args, s, out)
        except KeyboardInterrupt as e:
            # Ctrl-C, or SIGTERM/SIGHUP (cli.Stopped): one line, not a traceback; the exit
            # status is the shell's, 130 for Ctrl-C and 128 + the signal's number otherwise.
            how = f"stopped by {e.name}" if hasattr(e, "exit_code") else "interrupted"
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                print(f"{how}: {_kept(out, s, args)}", file=sys.stderr)
            return getattr(e, "exit_code", 130)


def _train(args, s, out):
    folder = s["data"] == "imagefolder"
    if folder:
        try:
            train_set, test_set = data.load_imagefolder(args.data_dir)
        except (OSError, ValueError) as e:
            raise SystemExit(f"--data imagefolder: {e}") from None
        _check_image_sizes(train_set, test_set, s["image_size"], args.multiscale)
    else:
        train_set, test_set = options.load_data(s["data"], args.data_dir, args.download)
    if len(train_set) < 2:
        raise SystemExit(f"--data {s['data']}: {len(train_set)} training image; training needs "
                         "at least 2 (batch norm takes statistics over a batch)")
    backend.manual_seed(s["seed"])
    in_channels = train_set.channels if folder else train_set.images.shape[1]
    model = models.get_model(s["model"], num_classes=train_set.num_classes,
                             in_channels=in_channels)
    # A last batch of one image would give batch norm a single example to take statistics over
    # (and none at all where a net's last stage is 1x1): skip it. The order is reshuffled every
    # epoch, so a different image sits out each time.
    single = len(train_set) % s["batch_size"] == 1
    if folder:  # the ImageNet recipe, sec. 3.4
        print(f"the training mean and colour eigenvectors, from {min(len(train_set), 10000)} "
              "training images ...")
        try:
            recipe = data.transforms.ImageNetRecipe(train_set, s["image_size"], seed=s["seed"])
        except ValueError as e:
            raise SystemExit(f"--data imagefolder: {e}") from None
        train_loader = data.DataLoader(train_set, s["batch_size"], shuffle=True, seed=s["seed"],
                                       normalize=None, transform=recipe.train_transform,
                                       augment=recipe.train_augment, drop_last=single)
        test_batch = max(1, min(s["batch_size"], 256) // (10 if s["ten_crop"] else 1))
        test_loader = data.DataLoader(test_set, test_batch,
                                      transform=recipe.ten_crop if s["ten_crop"]
                                      else recipe.test_transform,
                                      augment=recipe.test_augment, normalize=None)
    else:
        train_loader = data.DataLoader(train_set, s["batch_size"], shuffle=True, seed=s["seed"],
                                       augment=data.paper_augment(train_set), drop_last=single)
        test_loader = data.DataLoader(test_set, 256)
    optimizer = optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                          weight_decay=s["weight_decay"])
    if s["schedule"] == "plateau":
        scheduler = optim.ReduceLROnPlateau(optimizer, patience=s["patience"])
        schedule = f"/10 when the test error has not improved for {s['patience']} epochs"
    else:
        scheduler = optim.MultiStepLR(optimizer, s["milestones"])
        schedule = f"/10 after epochs {s['milestones']}"
    n_params = sum(p.size for p in model.parameters())
    params = f"{n_params:,} parameters"
    if in_channels != 3 and hasattr(model, "conv1"):
        # The paper's nets take RGB images; only the first conv's input channels differ.
        rgb = n_params + model.conv1.weight.size // in_channels * (3 - in_channels)
        params += (f"; {rgb:,} on 3-channel images, the {in_channels}-channel {s['data']} need "
                   "a smaller first conv")
    print(f"{s['model']} ({params}) on {s['data']}: {len(train_set)} training and "
          f"{len(test_set)} test images, {s['epochs']} epochs of batch {s['batch_size']}, "
          f"lr {s['lr']} {schedule}, device {args.device}")
    if folder:
        print(f"images: {recipe.sizes['crop']}x{recipe.sizes['crop']} crops, shorter side in "
              f"{list(recipe.sizes['train_sides'])}; tested at {recipe.sizes['test_side']}, "
              f"{'10 crops' if s['ten_crop'] else 'centre crop'}")
    if single:
        print("each epoch skips its last batch: it would hold 1 image, and batch norm in "
              "training needs a batch")
    print("test accuracy uses batch norm's running statistics, which settle over the first "
          f"epochs: epoch 1 can test near chance ({1 / train_set.num_classes:.0%})")
    _start(out, s, new_run=not args.resume)
    try:
        history = train.fit(model, train_loader, test_loader, optimizer=optimizer,
                            scheduler=scheduler, epochs=s["epochs"], device=args.device,
                            out_dir=out, resume=args.resume, warmup=s["warmup"],
                            progress=args.progress, config=s, top5=folder)
    except train.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except train.CheckpointError as e:  # with --resume: a checkpoint this run cannot continue
        raise SystemExit(f"--resume: {e}") from None
    except data.imagefolder.ImageReadError as e:  # a damaged file met in the middle of an epoch
        print(f"error: {e}; move it out of {args.data_dir}, then {_kept(out, s, args)}",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write {e.filename or out} ({e.strerror or e}); "
              f"{_kept(out, s, args)}", file=sys.stderr)
        return 1
    last = history[-1]
    top5 = f", top-5 error {last['test_top5_error']:.2%}" if folder else ""
    print(f"test accuracy after {last['epoch']} epochs: {1 - last['test_error']:.2%}{top5} "
          f"(test loss {last['test_loss']:.4f}, "
          f"{sum(r['seconds'] for r in history):.0f} s of training)")
    if args.multiscale:
        sides = recipe.sizes["multiscale_sides"]
        r = train.evaluate_multiscale(model, test_set, sides, recipe.mean, args.device)
        result = {"loss": r.loss, "images": r.images, "top1_error": r.error,
                  "top5_error": r.top5_error, "sides": list(sides)}
        path = os.path.join(out, "multiscale.json")
        with io.atomic_write(path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"multi-scale test (shorter sides {list(sides)} and their flips): top-1 error "
              f"{r.error:.2%}, top-5 error {r.top5_error:.2%}; wrote {path}")
    return 0
