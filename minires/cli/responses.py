"""``python -m minires responses``: std of every 3x3 layer's response, plain vs ResNet (Fig. 7)."""
import os

from .. import degradation, responses, train
from . import options

HELP = "std of every 3x3 layer's response, plain vs ResNet (Figure 7)"


def add_arguments(parser):
    parser.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                        help="reuse the nets trained by `python -m minires degradation --out DIR` "
                             "(default: train them here with the degradation recipe)")
    options.add_seed(parser)
    options.add_depths(parser, default=degradation.DEPTHS)
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that runs in seconds (numbers are noise): depths "
                             f"{' '.join(map(str, degradation.QUICK['depths']))}, {degradation.QUICK['epochs']} "
                             f"epochs on {degradation.QUICK['limit']} images")
    options.add_device(parser)
    options.add_out(parser, "runs/responses")
    options.add_progress(parser)


def main(args):
    options.check_device(args.device)
    options.check_out(args.out)
    depths = args.depths
    if args.quick and depths == list(degradation.DEPTHS):
        depths = list(degradation.QUICK["depths"])
    if args.from_dir is not None:
        if not os.path.isdir(args.from_dir):
            raise SystemExit(f"--from {args.from_dir}: not a folder")
        missing = [f"{n}-seed{args.seed}.npz" for n in degradation.net_names(depths)
                   if not os.path.exists(degradation.checkpoint_path(args.from_dir, n, args.seed))]
        if missing:
            raise SystemExit(f"--from {args.from_dir}: no {', '.join(missing)} (train them with "
                             f"`python -m minires degradation --out {args.from_dir}`, or pick --seed/--depths)")
    train_set, test_set = options.load_data("digits")
    recipe = dict(degradation.RECIPES["digits"])
    epochs = degradation.QUICK["epochs"] if args.quick else recipe["epochs"]
    limit = degradation.QUICK["limit"] if args.quick else None
    train_kwargs = {"epochs": epochs, "batch_size": min(recipe["batch_size"], limit or recipe["batch_size"]),
                    "lr": recipe["lr"], "warmup": recipe["warmup"], "milestones": train.default_milestones(epochs),
                    "momentum": recipe["momentum"], "weight_decay": recipe["weight_decay"]}
    if args.from_dir is None:
        print(f"training {', '.join(degradation.net_names(depths))} on the digits with the degradation recipe "
              f"({epochs} epochs), seed {args.seed}", flush=True)
    result = responses.run(test_set, nets=None, out=args.out, from_dir=args.from_dir, seed=args.seed,
                           train_set=train_set, depths=depths, train_kwargs=train_kwargs, limit=limit,
                           device=args.device, progress=args.progress)
    print(f"\n{'net':>9} {'layers':>7} {'mean std':>9} {'median':>8} {'max':>7}")
    for name, s in result["summary"].items():
        print(f"{name:>9} {len(result['std'][name]):7d} {s['mean']:9.3f} {s['median']:8.3f} {s['max']:7.3f}")
    print(f"\nwrote {result['png']} and {result['json']}")
    return 0
