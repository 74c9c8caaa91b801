"""``python -m minires paths``: the gradient by path length in a ResNet (Veit et al. 2016)."""
from ..experiments import paths
from . import options
from .lesion import add_epochs, add_from, check_from, default, recipe, settings

HELP = ("how much gradient flows through the ResNet's paths of each length (Veit et al. 2016, "
        "Fig. 6)")
FULL = {"depth": 56, "epochs": None, "limit": None, "draws": 10, "batch_size": 64}
QUICK = {"depth": 14, "epochs": 1, "limit": 128, "draws": 2, "batch_size": 32}


def add_arguments(parser):
    parser.add_argument("--depth", type=options.cifar_depth, default=None,
                        help="the ResNet's depth, 6n+2 (" + default("depth", FULL, QUICK)
                             + "; 56 has 27 blocks)")
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--draws", type=options.positive_int, default=None,
                        help="random paths per length (" + default("draws", FULL, QUICK) + ")")
    parser.add_argument("--batch-size", type=options.positive_int, default=None,
                        help="training images in the measured batch ("
                             + default("batch_size", FULL, QUICK)
                             + "; at least 2 for batch norm)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: ResNet-14, one epoch on 128 images, 2 "
                             "draws, a batch of 32, unless given (the numbers are noise)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/paths")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    if s["batch_size"] < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), got "
                         f"{s['batch_size']}")
    options.check_device(args.device)
    options.check_out(args.out)
    check_from(args.from_dir, [f"resnet{s['depth']}"], args.seed)
    # The gradients kept: of every draw at every path length, before and after training.
    blocks = (s["depth"] - 2) // 2
    options.check_memory("--draws", 200 * 2 * s["draws"] * blocks,
                         f"the gradients of {s['draws']} paths of each length")
    with options.lock_out(args.out):
        print(f"gradient by path length in ResNet-{s['depth']} on a batch of {s['batch_size']} "
              f"training digits, {s['draws']} random paths per length, at initialisation and "
              + (f"as loaded from {args.from_dir}" if args.from_dir else "after training")
              + f"; seed {args.seed}", flush=True)
        paths.run(args.out, depth=s["depth"], recipe=recipe(s["epochs"]), from_dir=args.from_dir,
                  draws=s["draws"], batch_size=s["batch_size"], seed=args.seed, limit=s["limit"],
                  device=args.device, progress=args.progress)
    return 0
