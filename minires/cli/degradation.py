"""``python -m minires degradation``: plain vs residual nets trained with one recipe (Fig. 6)."""
import json
import os
import time

from .. import degradation, flow, io, train
from . import options

HELP = "plain vs residual training curves (Figure 6 in miniature)"


def add_arguments(parser):
    options.add_data(parser)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default: {degradation.EPOCHS['digits']} for digits (about ten minutes on 2 cores), "
                             f"{degradation.EPOCHS['cifar10']} for cifar10 (the paper's 64k iterations; use a GPU)")
    options.add_depths(parser, default=[20, 56])
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default: {train.DEFAULTS['digits'][1]} for digits, {train.DEFAULTS['cifar10'][1]} for cifar10")
    parser.add_argument("--lr", type=float, default=None, help="initial learning rate (default 0.1)")
    parser.add_argument("--limit", type=int, default=None, help="use only this many training and test images (quick trials)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, None, "output folder (default: runs/degradation-DATA)")
    options.add_progress(parser)


def _check(args):
    """Every option checked before any training, each error naming its option."""
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size is not None and args.batch_size < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), got {args.batch_size}")
    if args.lr is not None and not args.lr > 0:
        raise SystemExit(f"--lr must be > 0, got {args.lr}")
    if args.limit is not None and args.limit < 2:
        raise SystemExit(f"--limit must be >= 2, got {args.limit}")
    options.check_device(args.device)
    options.check_out(args.out)


def main(args):
    _check(args)
    epochs = args.epochs or degradation.EPOCHS[args.data]
    _, batch_size, lr = train.DEFAULTS[args.data]
    batch_size, lr = args.batch_size or batch_size, args.lr or lr
    milestones = train.default_milestones(epochs)
    out = args.out or f"runs/degradation-{args.data}"
    train_set, test_set = options.load_data(args.data, args.data_dir, args.download)
    if args.limit is not None and args.batch_size is None:
        batch_size = min(batch_size, args.limit)
    names = [f"{kind}{d}" for kind in ("plain", "resnet") for d in args.depths]
    n_train = min(len(train_set), args.limit or len(train_set))
    n_test = min(len(test_set), args.limit or len(test_set))
    print(f"degradation on {args.data}: {', '.join(names)}; {n_train} training / {n_test} test images, "
          f"{epochs} epochs of batch {batch_size}, SGD lr {lr} (/10 at epochs {milestones}), momentum 0.9, "
          f"weight decay 1e-4, augmentation, seed {args.seed}, device {args.device}", flush=True)
    start = time.perf_counter()
    histories, records = {}, {}
    for name in names:
        histories[name], records[name] = degradation.train_one(
            name, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr, milestones=milestones,
            seed=args.seed, device=args.device, limit=args.limit, progress=args.progress)
    seconds = time.perf_counter() - start

    print(f"\n{'net':>9} {'train error':>12} {'test error':>11} {'best test':>10} {'|dW first|/|dW last|':>22} "
          f"{'seconds':>8}")
    for name in names:
        h, last = histories[name], histories[name][-1]
        ratio = flow.first_last_ratio(records[name][-1]["weights"])
        print(f"{name:>9} {last['train_error']:12.2%} {last['test_error']:11.2%} "
              f"{min(r['test_error'] for r in h):10.2%} {ratio:22.3g} {sum(r['seconds'] for r in h):8.0f}")

    os.makedirs(out, exist_ok=True)
    settings = {"data": args.data, "nets": names, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "momentum": 0.9, "weight_decay": 1e-4, "milestones": milestones, "augment": True,
                "limit": args.limit, "seed": args.seed, "device": args.device, "seconds": round(seconds, 1)}
    json_path = os.path.join(out, "degradation.json")
    with io.atomic_write(json_path, "w") as f:
        json.dump({"settings": settings, "histories": histories, "flow": records}, f, indent=1)
    csv_path = degradation.write_csv(histories, os.path.join(out, "degradation.csv"))
    png_path = degradation.plot_degradation(histories, os.path.join(out, "degradation.png"), milestones,
                                title=f"Plain vs residual on {args.data} ({n_train} training images, "
                                      f"batch {batch_size}, lr {lr})")
    flow_path = flow.plot_flow_over_training(
        records, os.path.join(out, "flow_over_training.png"),
        title=f"Conv weight-gradient norms on one training batch, epochs 0..{epochs} ({args.data})")
    print(f"\n{seconds:.0f} s; wrote {png_path}, {flow_path}, {json_path} and {csv_path}")
    return 0
