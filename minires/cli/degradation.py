"""``python -m minires degradation``: plain vs residual nets, one recipe, several seeds (Fig. 6)."""
import sys

from ..experiments import degradation, nets
from . import options

HELP = "plain vs residual training curves over several seeds (Figure 6 in miniature)"


def add_arguments(parser):
    options.add_data(parser)
    d, c = nets.RECIPES["digits"], nets.RECIPES["cifar10"]
    parser.add_argument("--seeds", type=options.seed_count, default=None, metavar="N",
                        help="number of seeds, each a full run of every net "
                             f"(default: {degradation.SEEDS})")
    parser.add_argument("--first-seed", type=options.seed, default=0, metavar="S",
                        help="the seeds are S, S+1, ..., S+N-1 (default: 0)")
    options.add_depths(parser, default=degradation.DEPTHS)
    parser.set_defaults(depths=None)  # unset: the recipe's (or --quick's) depths
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help=f"default: {d.epochs} for digits, {c.epochs} for cifar10 "
                             "(the paper's 64k iterations; use a GPU)")
    parser.add_argument("--batch-size", type=options.positive_int, default=None,
                        help=f"default: {d.batch_size} for digits, {c.batch_size} for cifar10")
    parser.add_argument("--lr", type=options.positive_float, default=None,
                        help=f"learning rate after the warm-up (default: {d.lr:g})")
    parser.add_argument("--warmup", type=options.nonnegative_float, default=None, metavar="LR",
                        help="warm-up lr, used until the training error is below 80%% "
                             f"(default: {d.warmup:g}; 0: no warm-up)")
    parser.add_argument("--limit", type=options.positive_int, default=None,
                        help="use only this many training and test images")
    q = degradation.QUICK
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that runs in seconds (numbers are noise): depths "
                             f"{' '.join(map(str, q['depths']))}, {q['epochs']} epochs, "
                             f"{q['limit']} images, {q['seeds']} seeds, unless given")
    parser.add_argument("--jobs", type=options.positive_int, default=None,
                        help="train this many nets at once, each in its own process with one "
                             "thread (CPU only; the same numbers for any value; default: "
                             f"{degradation.JOBS}, or the cores there are)")
    options.add_device(parser)
    options.add_out(parser, None, "output folder (default: runs/degradation-DATA)")
    options.add_progress(parser)


def main(args):
    if args.batch_size is not None and args.batch_size < 2:
        raise SystemExit(f"--batch-size: must be >= 2 (batch norm needs a batch), "
                         f"got {args.batch_size}")
    if args.limit is not None and args.limit < 2:
        raise SystemExit(f"--limit: must be >= 2, got {args.limit}")
    options.check_device(args.device)
    if args.quick:
        defaults = degradation.QUICK
    else:
        defaults = {"depths": degradation.DEPTHS, "seeds": degradation.SEEDS}
    depths = args.depths or list(defaults["depths"])
    n_seeds = args.seeds or defaults["seeds"]
    epochs, limit = args.epochs or defaults.get("epochs"), args.limit or defaults.get("limit")
    changes = {k: v for k, v in (("epochs", epochs), ("batch_size", args.batch_size),
                                 ("lr", args.lr)) if v is not None}
    if args.warmup is not None:
        changes["warmup"] = args.warmup or None  # 0: no warm-up
    recipe = nets.RECIPES.get(args.data, nets.RECIPES["digits"]).replace(**changes)
    out = args.out or f"runs/degradation-{args.data}"
    with options.lock_out(out):
        train_set, test_set = options.load_data(args.data, args.data_dir, args.download)
        command = None
        if sys.argv[1:2] == ["degradation"]:
            command = "python -m minires " + " ".join(sys.argv[1:])
        degradation.run(out, train_set=train_set, test_set=test_set, data_name=args.data,
                        depths=depths, seeds=range(args.first_seed, args.first_seed + n_seeds),
                        recipe=recipe, limit=limit, jobs=args.jobs or (1 if args.quick else None),
                        command=command, device=args.device, progress=args.progress)
    return 0
