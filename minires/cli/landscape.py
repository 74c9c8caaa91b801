"""``python -m minires landscape``: loss landscapes with filter normalisation (Li et al. 2018)."""
import argparse

from ..experiments import landscape
from . import options
from .lesion import add_epochs, add_from, check_from, default, recipe, settings

HELP = ("the training loss around trained plain nets and ResNets, filter-normalised directions "
        "(Li et al. 2018)")
FULL = {"depths": [20, 56], "epochs": None, "limit": None, "points": 21, "points_1d": 31,
        "slices": 2, "images": 128}
QUICK = {"depths": [8], "epochs": 1, "limit": 128, "points": 5, "points_1d": 7, "slices": 2,
         "images": 64}
# The widest plot: [-10, 10] filter norms. Li et al. plot [-1, 1]; far beyond, the weights are
# many times the trained ones and the loss overflows.
MAX_SPAN = 10.0


def _odd_points(text):
    value = options.positive_int(text)
    if value < 3 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd and >= 3 (the grid's centre is the trained "
                                         f"net), got {value}")
    return value


def add_arguments(parser):
    options.add_depths(parser, default=FULL["depths"])
    parser.set_defaults(depths=None)  # unset: FULL's or QUICK's
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--points", type=_odd_points, default=None,
                        help="grid points per axis of the 2-D plot, odd ("
                             + default("points", FULL, QUICK) + ": a 21 x 21 grid)")
    parser.add_argument("--points-1d", type=_odd_points, default=None,
                        help="points of each 1-D slice, odd (" + default("points_1d", FULL, QUICK)
                             + ")")
    parser.add_argument("--slices", type=options.positive_int, default=None,
                        help="1-D slices per net (" + default("slices", FULL, QUICK) + ")")
    parser.add_argument("--span", type=options.at_most(options.positive_float, MAX_SPAN),
                        default=1.0,
                        help="the plots cover [-SPAN, SPAN] in units of the filter norms "
                             f"(default 1, at most {MAX_SPAN:g})")
    parser.add_argument("--images", type=options.positive_int, default=None,
                        help="training digits the loss is measured on ("
                             + default("images", FULL, QUICK) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: depth 8, one epoch on 128 images, a 5 x "
                             "5 grid, 7-point slices, 64 images, unless given (the numbers are "
                             "noise)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/landscape")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    options.check_device(args.device)
    options.check_out(args.out)
    # Each loss is kept three times (the array, the report's lists and landscape.json's text),
    # for both nets of each depth.
    nets = 2 * len(s["depths"])
    options.check_memory("--points", 100 * nets * s["points"] ** 2,
                         f"{nets} grids of {s['points']} x {s['points']} losses")
    options.check_memory("--slices", 100 * nets * s["slices"] * s["points_1d"],
                         f"{nets} x {s['slices']} slices of {s['points_1d']} losses")
    check_from(args.from_dir, [f"{k}{d}" for d in s["depths"] for k in ("plain", "resnet")],
               args.seed)
    with options.lock_out(args.out):
        print(f"loss landscapes of plain net and ResNet of depth "
              f"{', '.join(map(str, s['depths']))}: a {s['points']} x {s['points']} grid and "
              f"{s['slices']} slices of {s['points_1d']} points over [-{args.span:g}, "
              f"{args.span:g}], loss on {s['images']} training digits, batch norm in eval mode; "
              "nets " + (f"loaded from {args.from_dir}" if args.from_dir else "trained here")
              + f"; seed {args.seed}", flush=True)
        landscape.run(args.out, depths=s["depths"], recipe=recipe(s["epochs"]),
                      from_dir=args.from_dir, points=s["points"], points_1d=s["points_1d"],
                      slices=s["slices"], span=args.span, images=s["images"], seed=args.seed,
                      limit=s["limit"], device=args.device, progress=args.progress)
    return 0
