"""``python -m minires normfree``: deep ResNets trained with batch norm, without it, with SkipInit
and with Fixup, one recipe, several seeds.

The options left unset take the values of ``FULL``, or of ``QUICK`` with ``--quick``; an option
given explicitly always wins (``--quick --epochs 3`` trains three epochs).
"""
import sys

from ..experiments import normfree
from . import options
from .lesion import default, settings

HELP = ("train deep ResNets with batch norm, without normalisation, with SkipInit and with Fixup "
        "(one recipe, several seeds)")
R = normfree.RECIPE
FULL = {"depths": list(normfree.DEPTHS), "seeds": len(normfree.SEEDS), "epochs": R.epochs,
        "limit": None}
QUICK = {"depths": [8], "seeds": 2, "epochs": 1, "limit": 64}


def add_arguments(parser):
    options.add_depths(parser, default=normfree.DEPTHS)
    parser.set_defaults(depths=None)  # unset: FULL's, or QUICK's with --quick
    options.add_variants(parser, normfree.VARIANTS)
    parser.add_argument("--seeds", type=options.seed_count, default=None, metavar="N",
                        help="number of seeds, each a run of every variant ("
                             + default("seeds", FULL, QUICK) + ")")
    parser.add_argument("--first-seed", type=options.seed, default=0, metavar="S",
                        help="the seeds are S, S+1, ..., S+N-1 (default: 0)")
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help="training epochs, lr /10 at 50%% and 75%% of them ("
                             + default("epochs", FULL, QUICK) + ")")
    parser.add_argument("--lr", type=options.positive_float, default=None,
                        help=f"learning rate (default: {R.lr:g})")
    parser.add_argument("--warmup", type=options.nonnegative_float, default=None, metavar="LR",
                        help="warm-up lr, used until the training error is below 80%% "
                             "(default: none)")
    parser.add_argument("--limit", type=options.positive_int, default=None,
                        help="train and test on this many images (default: all; --quick: "
                             f"{QUICK['limit']})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that runs in seconds (numbers are noise): depth "
                             f"{QUICK['depths'][0]}, {QUICK['epochs']} epoch, {QUICK['limit']} "
                             f"images, {QUICK['seeds']} seeds, unless given")
    options.add_device(parser)
    options.add_out(parser, "runs/normfree", "output folder for normfree.json, .csv and .png")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    if s["limit"] is not None and s["limit"] < 2:
        raise SystemExit(f"--limit: must be >= 2 (batch norm needs a batch), got {s['limit']}")
    options.check_device(args.device)
    changes = {"epochs": s["epochs"]}
    if args.lr is not None:
        changes["lr"] = args.lr
    if args.warmup is not None:
        changes["warmup"] = args.warmup or None  # 0: no warm-up
    recipe = R.replace(**changes)
    command = None
    if sys.argv[1:2] == ["normfree"]:
        command = "python -m minires " + " ".join(sys.argv[1:])
    with options.lock_out(args.out):
        normfree.run(args.out, depths=s["depths"], variants=tuple(args.variants),
                     seeds=range(args.first_seed, args.first_seed + s["seeds"]), recipe=recipe,
                     limit=s["limit"], command=command, device=args.device,
                     progress=args.progress)
    return 0
