"""``python -m minires lesion``: delete blocks of trained nets at test time (Veit et al. 2016)."""
import os

from ..experiments import lesion, nets
from . import options

HELP = ("delete blocks of trained ResNets and plain nets at test time (Veit et al. 2016, Fig. 3 "
        "and 5)")
QUICK = {"depths": [14], "epochs": 1, "limit": 128, "draws": 2}


def add_from(parser):
    """--from DIR: reuse trained nets (``<net>-seed<S>.npz``) instead of training them."""
    parser.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                        help="reuse the trained nets <net>-seed<S>.npz in DIR (the --out of a "
                             "lesion, paths, landscape or degradation run) instead of training "
                             "them")


def check_from(directory, names, seed):
    """One line when --from is not a folder or lacks one of the nets the command needs."""
    if directory is None:
        return
    if not os.path.isdir(directory):
        raise SystemExit(f"--from {directory}: not a folder")
    for name in names:
        path = nets.checkpoint_path(directory, name, seed)
        if not os.path.exists(path):
            raise SystemExit(f"--from {directory}: no trained {name} of seed {seed} (expected "
                             f"{path}); train it with: python -m minires lesion --out {directory}")


def add_epochs(parser):
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help=f"training epochs (default {nets.RECIPES['digits'].epochs}: the "
                             "recipe's; ignored with --from)")


def recipe(epochs):
    """The shared digits recipe (``nets.RECIPES["digits"]``), with ``epochs`` unless None."""
    r = nets.RECIPES["digits"]
    return r if epochs is None else r.replace(epochs=epochs)


def add_arguments(parser):
    options.add_depths(parser, default=[20, 56])
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--max-k", type=options.positive_int, default=10,
                        help="delete k = 1..MAX_K random blocks (default 10; at most the "
                             "shape-preserving ones)")
    parser.add_argument("--draws", type=options.positive_int, default=5,
                        help="random draws per k (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: depth 14, one epoch on 128 images "
                             "(the numbers are noise; it checks that everything runs)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/lesion")
    options.add_progress(parser)


def main(args):
    s = {"depths": args.depths, "epochs": args.epochs, "limit": None, "draws": args.draws}
    if args.quick:
        s.update(QUICK)
    options.check_device(args.device)
    options.check_out(args.out)
    check_from(args.from_dir, [f"{k}{d}" for d in s["depths"] for k in ("resnet", "plain")],
               args.seed)
    r = recipe(s["epochs"])
    trained = (f"trained {r.epochs} epoch{'s' if r.epochs != 1 else ''} (batch {r.batch_size}, "
               f"lr {r.lr} /10 at epochs {list(r.milestones)}, warm-up at {r.warmup}, momentum "
               f"{r.momentum}, weight decay {r.weight_decay})")
    print(f"lesion study on the digits: ResNet and plain net of depth "
          f"{', '.join(map(str, s['depths']))}, "
          + (f"loaded from {args.from_dir}" if args.from_dir else trained)
          + f"; k = 1..{args.max_k}, {s['draws']} draws; seed {args.seed}", flush=True)
    lesion.run(args.out, depths=s["depths"], recipe=r, from_dir=args.from_dir,
               ks=tuple(range(1, args.max_k + 1)), draws=s["draws"], seed=args.seed,
               limit=s["limit"], device=args.device, progress=args.progress)
    return 0
