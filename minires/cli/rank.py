"""``python -m minires rank``: the rank of a batch's representations, block by block, at
initialisation (Daneshmand et al. 2020; Dong et al. 2021)."""
import sys

from .. import data
from ..experiments import rank
from . import options

HELP = ("effective and stable rank of a batch's representations block by block at "
        "initialisation: plain vs residual, with and without batch norm (rank collapse)")
QUICK = {"depths": [8, 14], "seeds": [0], "batch_size": 16}


def add_arguments(parser):
    parser.add_argument("--depths", type=options.cifar_depth, nargs="+", default=None,
                        metavar="DEPTH",
                        help="CIFAR-layout depths 6n+2 (default: "
                             f"{' '.join(map(str, rank.DEPTHS))})")
    parser.add_argument("--variants", nargs="+", choices=rank.VARIANTS, default=None,
                        metavar="VARIANT",
                        help=f"nets to measure, of {', '.join(rank.VARIANTS)} (default: all)")
    parser.add_argument("--seeds", type=options.nonnegative_int, nargs="+", default=None,
                        metavar="SEED",
                        help="each seed draws the weights and the batch (default: "
                             f"{' '.join(map(str, rank.SEEDS))})")
    parser.add_argument("--batch-size", type=options.positive_int, default=None,
                        help=f"training digits per batch (default {rank.BATCH}; at least 2: "
                             "batch norm needs a batch)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: depths 8 and 14, one seed, a batch of 16 (a check that "
                             "everything runs)")
    options.add_device(parser)
    options.add_out(parser, "runs/rank", "output folder for rank.json and rank.png")
    options.add_progress(parser)


def command_line(name="rank"):
    """The command ``name`` as typed, when this process runs it (None inside another program),
    for the run's JSON."""
    if sys.argv[1:2] == [name]:
        return "python -m minires " + " ".join(sys.argv[1:])
    return None


def main(args):
    s = {"depths": list(rank.DEPTHS), "seeds": list(rank.SEEDS), "batch_size": rank.BATCH}
    if args.quick:
        s.update(QUICK)
    for key in s:  # an explicit option wins over --quick
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    train_set, _ = data.load_digits()
    if not 2 <= s["batch_size"] <= len(train_set):
        raise SystemExit(f"--batch-size must be in 2..{len(train_set)} (batch norm needs a "
                         f"batch; there are {len(train_set)} training digits), got "
                         f"{s['batch_size']}")
    options.check_device(args.device)
    variants = args.variants or list(rank.VARIANTS)
    print(f"rank of a batch of {s['batch_size']} training digits' representations at "
          f"initialisation: {', '.join(rank.LABELS[v] for v in variants)}; depths "
          f"{', '.join(map(str, s['depths']))}; seeds {', '.join(map(str, s['seeds']))}",
          flush=True)
    with options.lock_out(args.out):
        rank.run(args.out, depths=s["depths"], variants=variants, seeds=s["seeds"],
                 batch_size=s["batch_size"], train_set=train_set, device=args.device,
                 command=command_line(), progress=args.progress)
    return 0
