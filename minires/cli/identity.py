"""``python -m minires identity``: the shortcut and activation variants of "Identity Mappings",
trained in miniature."""
from ..experiments import identity
from . import options
from .lesion import default, settings

HELP = ("shortcut variants (Table 1) and BN/ReLU orders (Table 2) of Identity Mappings, trained "
        "with one recipe")

FULL = {"depth": identity.DEPTH, "widths": list(identity.WIDTHS),
        "epochs": identity.RECIPE.epochs, "limit": None}
QUICK = {"depth": 14, "widths": [4, 8, 16], "epochs": 3, "limit": 256}


def add_arguments(parser):
    recipe = identity.RECIPE
    options.add_variants(parser, identity.VARIANTS)
    parser.add_argument("--depth", type=options.cifar_depth, default=None,
                        help=f"layers, 6n + 2 ({default('depth', FULL, QUICK)}; the paper's: "
                             "110)")
    parser.add_argument("--widths", type=options.positive_int, nargs=3, default=None,
                        metavar="PLANES",
                        help=f"planes of the three stages ({default('widths', FULL, QUICK)}; the "
                             "paper's: 16 32 64)")
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help="epochs per variant; lr / 10 at 50%% and 75%% ("
                             + default("epochs", FULL, QUICK) + ")")
    parser.add_argument("--batch-size", type=options.positive_int, default=recipe.batch_size,
                        help=f"default: {recipe.batch_size} (at least 2: batch norm needs a batch)")
    parser.add_argument("--lr", type=options.positive_float, default=recipe.lr,
                        help=f"initial learning rate (default: {recipe.lr})")
    parser.add_argument("--seeds", type=options.seed_count, default=1,
                        help="runs per variant, seeds --seed, --seed + 1, ... (default: 1)")
    parser.add_argument("--limit", type=options.positive_int, default=None,
                        help="use only this many training and test images (quick trials; "
                             f"--quick: {QUICK['limit']})")
    parser.add_argument("--quick", action="store_true",
                        help=f"depth {QUICK['depth']}, widths "
                             f"{' '.join(map(str, QUICK['widths']))}, {QUICK['epochs']} epochs, "
                             f"{QUICK['limit']} images, unless given (about a minute)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                        help="train nothing: merge the identity.json of these earlier runs of one "
                             "recipe (halves of the variants, other seeds) into one table and "
                             "figure in --out")
    options.add_data(parser)
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/identity",
                    "output folder for identity_loss.png, identity.json and .csv")
    options.add_progress(parser)


def log(message):
    print(message, flush=True)  # in step with the progress bars, also into a file


def main(args):
    if args.merge:
        with options.lock_out(args.out):
            try:
                identity.merge(args.merge, args.out, log=log)
            except ValueError as e:
                raise SystemExit(f"--merge: {e}") from None
        return 0
    s = settings(args, FULL, QUICK)
    args.depth, args.widths, args.epochs, args.limit = (s["depth"], s["widths"], s["epochs"],
                                                        s["limit"])
    if args.batch_size < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), "
                         f"got {args.batch_size}")
    if args.limit is not None and args.limit < 2:
        raise SystemExit(f"--limit must be >= 2, got {args.limit}")
    options.check_device(args.device)
    options.check_out(args.out)
    train_set, test_set = options.load_data(args.data, args.data_dir, args.download)
    seeds = list(range(args.seed, args.seed + args.seeds))
    n_train = min(len(train_set), args.limit or len(train_set))
    channels, side = train_set.images.shape[1], train_set.images.shape[-1]
    batch = min(args.batch_size, n_train)
    options.check_memory("--depth/--widths", options.conv_net_bytes(
        args.depth, args.widths, side, batch, channels),
        f"{args.depth}-layer nets of widths {'/'.join(map(str, args.widths))} on batches of "
        f"{batch} {channels}x{side}x{side} images")
    recipe = identity.RECIPE.replace(epochs=args.epochs, batch_size=batch, lr=args.lr)
    with options.lock_out(args.out):
        print(f"identity mappings on {args.data}: {len(args.variants)} variants x {len(seeds)} "
              f"seed(s) {seeds}; {args.depth} layers, widths {'/'.join(map(str, args.widths))}, "
              f"{n_train} training images, {recipe.epochs} epochs of batch {args.batch_size}, "
              f"SGD lr {recipe.lr} (/10 at 50% and 75%), momentum {recipe.momentum}, weight "
              f"decay {recipe.weight_decay:g}, augmentation, device {args.device}", flush=True)
        identity.run(args.out, variants=tuple(args.variants), recipe=recipe, depth=args.depth,
                     widths=tuple(args.widths), seeds=seeds, data=args.data, train_set=train_set,
                     test_set=test_set, limit=args.limit, device=args.device,
                     progress=args.progress, log=log)
    return 0
