"""``python -m minires paths``: the gradient by path length in a ResNet (Veit et al. 2016)."""
from ..experiments import paths
from . import options
from .lesion import add_epochs, add_from, check_from, recipe

HELP = ("how much gradient flows through the ResNet's paths of each length (Veit et al. 2016, "
        "Fig. 6)")
QUICK = {"depth": 14, "epochs": 1, "limit": 128, "draws": 2, "batch_size": 32}


def add_arguments(parser):
    parser.add_argument("--depth", type=options.cifar_depth, default=56,
                        help="the ResNet's depth, 6n+2 (default 56: 27 blocks)")
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--draws", type=options.positive_int, default=10,
                        help="random paths per length (default 10)")
    parser.add_argument("--batch-size", type=options.positive_int, default=64,
                        help="training images in the measured batch (default 64; at least 2 for "
                             "batch norm)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: ResNet-14, one epoch on 128 images (the "
                             "numbers are noise)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/paths")
    options.add_progress(parser)


def main(args):
    s = {"depth": args.depth, "epochs": args.epochs, "limit": None, "draws": args.draws,
         "batch_size": args.batch_size}
    if args.quick:
        s.update(QUICK)
    if s["batch_size"] < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), got "
                         f"{s['batch_size']}")
    options.check_device(args.device)
    options.check_out(args.out)
    check_from(args.from_dir, [f"resnet{s['depth']}"], args.seed)
    print(f"gradient by path length in ResNet-{s['depth']} on a batch of {s['batch_size']} "
          f"training digits, {s['draws']} random paths per length, at initialisation and "
          + (f"as loaded from {args.from_dir}" if args.from_dir else "after training")
          + f"; seed {args.seed}", flush=True)
    paths.run(args.out, depth=s["depth"], recipe=recipe(s["epochs"]), from_dir=args.from_dir,
              draws=s["draws"], batch_size=s["batch_size"], seed=args.seed, limit=s["limit"],
              device=args.device, progress=args.progress)
    return 0
