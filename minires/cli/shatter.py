"""``python -m minires shatter``: gradients of scalar nets at initialisation, shattered or not
(Balduzzi et al. 2017)."""
from ..experiments import shatter
from . import options
from .lesion import default, settings

HELP = ("dy/dx of feedforward and residual nets along x, and its autocorrelation against depth "
        "(shattered gradients)")

FULL = {"max_depth": shatter.DEPTH, "width": shatter.WIDTH, "seeds": 3}
QUICK = {"max_depth": 12, "width": 64, "seeds": 2}


def add_arguments(parser):
    parser.add_argument("--max-depth", type=options.positive_int, default=None,
                        help="measure depths 1..N rectifier layers ("
                             + default("max_depth", FULL, QUICK) + "; 50 is the paper's)")
    parser.add_argument("--width", type=options.positive_int, default=None,
                        help="rectifier units per layer (" + default("width", FULL, QUICK)
                             + "; 200 is the paper's)")
    parser.add_argument("--points", type=options.positive_int, default=shatter.POINTS,
                        help=f"points x in [-2, 2] (default: {shatter.POINTS}, the paper's; "
                             "at least 16)")
    parser.add_argument("--seeds", type=options.seed_count, default=None,
                        help="nets drawn per variant and depth, seeds --seed, --seed + 1, ... ("
                             + default("seeds", FULL, QUICK) + ")")
    options.add_variants(parser, shatter.VARIANTS)
    parser.add_argument("--quick", action="store_true",
                        help=f"depths 1..{QUICK['max_depth']}, width {QUICK['width']}, "
                             f"{QUICK['seeds']} seeds, unless given (seconds, for a first look)")
    options.add_seed(parser, what="seeds the weights of every net")
    options.add_device(parser)
    options.add_out(parser, "runs/shatter", "output folder for the PNGs and shatter.json")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    args.max_depth, args.width, args.seeds = s["max_depth"], s["width"], s["seeds"]
    if args.points < 16:
        raise SystemExit("--points must be >= 16 (an autocorrelation needs a signal), "
                         f"got {args.points}")
    _check_memory(args)
    options.check_device(args.device)
    options.check_out(args.out)
    seeds = list(range(args.seed, args.seed + args.seeds))
    with options.lock_out(args.out):
        print(f"shattered gradients: {', '.join(args.variants)}; depths 1..{args.max_depth}, "
              f"{args.width} rectifiers per layer, {args.points} points in [-2, 2], seeds "
              f"{seeds}, He init, no training, device {args.device}", flush=True)
        shatter.run(args.out, depths=range(1, args.max_depth + 1), seeds=seeds, width=args.width,
                    points=args.points, variants=tuple(args.variants), device=args.device,
                    progress=args.progress)
    return 0


def _check_memory(args):
    """The deepest net, float32: its weights (width x width per layer) with their gradients and
    a copy, and four arrays of (points, width) per layer kept for the backward; then the results,
    float64: an autocorrelation of every point per variant, depth and seed, and their lists in
    the report. The option named is the one furthest above its default."""
    depth, width, points = args.max_depth, args.width, args.points
    full = {"max_depth": shatter.DEPTH, "width": shatter.WIDTH, "points": shatter.POINTS}

    def culprit(*names):
        name = max(names, key=lambda n: getattr(args, n) / full[n])
        return "--" + name.replace("_", "-")

    net = 4 * depth * (3 * width * width + 4 * points * width)
    options.check_memory(culprit("max_depth", "width", "points"), net,
                         f"a {depth}-layer net of {width} units on {points} points")
    results = 40 * len(args.variants) * depth * args.seeds * points
    options.check_memory(culprit("max_depth", "points"), results,
                         f"the autocorrelations of {points} points at {depth} depths")
