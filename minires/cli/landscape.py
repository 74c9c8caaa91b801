"""``python -m minires landscape``: loss landscapes with filter normalisation (Li et al. 2018)."""
import argparse

from ..experiments import landscape
from . import options
from .lesion import add_epochs, add_from, check_from, recipe

HELP = ("the training loss around trained plain nets and ResNets, filter-normalised directions "
        "(Li et al. 2018)")
QUICK = {"depths": [8], "epochs": 1, "limit": 128, "points": 5, "points_1d": 7, "slices": 2,
         "images": 64}


def _odd_points(text):
    value = options.positive_int(text)
    if value < 3 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd and >= 3 (the grid's centre is the trained "
                                         f"net), got {value}")
    return value


def add_arguments(parser):
    options.add_depths(parser, default=[20, 56])
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--points", type=_odd_points, default=21,
                        help="grid points per axis of the 2-D plot, odd (default 21: a 21 x 21 "
                             "grid)")
    parser.add_argument("--points-1d", type=_odd_points, default=31,
                        help="points of each 1-D slice, odd (default 31)")
    parser.add_argument("--slices", type=options.positive_int, default=2,
                        help="1-D slices per net (default 2)")
    parser.add_argument("--span", type=options.positive_float, default=1.0,
                        help="the plots cover [-SPAN, SPAN] in units of the filter norms "
                             "(default 1)")
    parser.add_argument("--images", type=options.positive_int, default=128,
                        help="training digits the loss is measured on (default 128)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: depth 8, one epoch on 128 images, a 5 x "
                             "5 grid (the numbers are noise)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/landscape")
    options.add_progress(parser)


def main(args):
    s = {"depths": args.depths, "epochs": args.epochs, "limit": None, "points": args.points,
         "points_1d": args.points_1d, "slices": args.slices, "images": args.images}
    if args.quick:
        s.update(QUICK)
    options.check_device(args.device)
    options.check_out(args.out)
    check_from(args.from_dir, [f"{k}{d}" for d in s["depths"] for k in ("plain", "resnet")],
               args.seed)
    print(f"loss landscapes of plain net and ResNet of depth {', '.join(map(str, s['depths']))}: "
          f"a {s['points']} x {s['points']} grid and {s['slices']} slices of {s['points_1d']} "
          f"points over [-{args.span:g}, {args.span:g}], loss on {s['images']} training digits, "
          "batch norm in eval mode; nets "
          + (f"loaded from {args.from_dir}" if args.from_dir else "trained here")
          + f"; seed {args.seed}", flush=True)
    landscape.run(args.out, depths=s["depths"], recipe=recipe(s["epochs"]),
                  from_dir=args.from_dir, points=s["points"], points_1d=s["points_1d"],
                  slices=s["slices"], span=args.span, images=s["images"], seed=args.seed,
                  limit=s["limit"], device=args.device, progress=args.progress)
    return 0
