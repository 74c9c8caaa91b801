"""``python -m minires shatter``: gradients of scalar nets at initialisation, shattered or not
(Balduzzi et al. 2017)."""
from ..experiments import shatter
from . import options

HELP = ("dy/dx of feedforward and residual nets along x, and its autocorrelation against depth "
        "(shattered gradients)")

QUICK = {"max_depth": 12, "width": 64, "seeds": 2}


def add_arguments(parser):
    parser.add_argument("--max-depth", type=options.positive_int, default=shatter.DEPTH,
                        help=f"measure depths 1..N rectifier layers (default: {shatter.DEPTH}, "
                             "the paper's)")
    parser.add_argument("--width", type=options.positive_int, default=shatter.WIDTH,
                        help=f"rectifier units per layer (default: {shatter.WIDTH}, the paper's)")
    parser.add_argument("--points", type=options.positive_int, default=shatter.POINTS,
                        help=f"points x in [-2, 2] (default: {shatter.POINTS}, the paper's; "
                             "at least 16)")
    parser.add_argument("--seeds", type=options.positive_int, default=3,
                        help="nets drawn per variant and depth, seeds --seed, --seed + 1, ... "
                             "(default: 3)")
    parser.add_argument("--variants", nargs="+", choices=shatter.VARIANTS,
                        default=list(shatter.VARIANTS), metavar="VARIANT",
                        help=f"any of {', '.join(shatter.VARIANTS)} (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"depths 1..{QUICK['max_depth']}, width {QUICK['width']}, "
                             f"{QUICK['seeds']} seeds (seconds, for a first look)")
    options.add_seed(parser, what="seeds the weights of every net")
    options.add_device(parser)
    options.add_out(parser, "runs/shatter", "output folder for the PNGs and shatter.json")
    options.add_progress(parser)


def main(args):
    if args.quick:
        args.max_depth, args.width, args.seeds = QUICK["max_depth"], QUICK["width"], QUICK["seeds"]
    if args.points < 16:
        raise SystemExit("--points must be >= 16 (an autocorrelation needs a signal), "
                         f"got {args.points}")
    options.check_device(args.device)
    options.check_out(args.out)
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(f"shattered gradients: {', '.join(args.variants)}; depths 1..{args.max_depth}, "
          f"{args.width} rectifiers per layer, {args.points} points in [-2, 2], seeds {seeds}, "
          f"He init, no training, device {args.device}", flush=True)
    shatter.run(args.out, depths=range(1, args.max_depth + 1), seeds=seeds, width=args.width,
                points=args.points, variants=tuple(args.variants), device=args.device,
                progress=args.progress)
    return 0
