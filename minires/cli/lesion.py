"""``python -m minires lesion``: delete blocks of trained nets at test time (Veit et al. 2016).

The options left unset take the values of ``FULL``, or of ``QUICK`` with ``--quick``: an option
given explicitly always wins (``--quick --draws 1`` draws once). The same holds for ``paths``,
``landscape``, ``identity`` and ``shatter``, which share this module's ``--from`` and ``--epochs``.
"""
import os

from .. import backend
from ..experiments import lesion, nets
from . import options

HELP = ("delete blocks of trained ResNets and plain nets at test time (Veit et al. 2016, Fig. 3 "
        "and 5)")
FULL = {"depths": [20, 56], "epochs": None, "limit": None, "draws": 5}
QUICK = {"depths": [14], "epochs": 1, "limit": 128, "draws": 2}
MAX_K = (options.MAX_DEPTH - 2) // 2  # ResNet-1202's 600 blocks


def settings(args, full, quick):
    """{name: value}: each option of ``full`` as given, or when unset (None) the default of
    ``quick`` (with --quick) or of ``full``."""
    table = quick if args.quick else full
    return {k: getattr(args, k, None) if getattr(args, k, None) is not None else table[k]
            for k in full}


def default(name, full, quick):
    """"default 5; --quick: 2", for a --help."""
    def text(v):
        return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return f"default {text(full[name])}; --quick: {text(quick[name])}"


def add_from(parser):
    """--from DIR: reuse trained nets (``<net>-seed<S>.npz``) instead of training them."""
    parser.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                        help="reuse the trained nets <net>-seed<S>.npz in DIR (the --out of a "
                             "lesion, paths, landscape or degradation run) instead of training "
                             "them")


def check_from(directory, names, seed, command="lesion"):
    """One line when --from is not a folder, lacks one of the nets the command needs, or holds a
    file that is not the net its name says (damaged, another net's, without metadata)."""
    if directory is None:
        return
    if not os.path.isdir(directory):
        raise SystemExit(f"--from {directory}: not a folder")
    for name in names:
        path = nets.checkpoint_path(directory, name, seed)
        if not os.path.exists(path):
            raise SystemExit(f"--from {directory}: no trained {name} of seed {seed} (expected "
                             f"{path}); train it with: python -m minires {command} --out "
                             f"{directory}")
    check_nets(directory, names, seed)


def check_nets(directory, names, seed):
    """Load each net as the experiment will, so that a bad file is refused before any work: one
    line naming it. Rebuilding a net draws its initial weights from minires's generator; its
    state is put back, so the experiment draws what it would have drawn."""
    rng = backend.default_rng().bit_generator
    state = rng.state
    try:
        for name in names:
            nets.load_trained(directory, name, seed)
    except (nets.TrainedNetError, OSError) as e:
        raise SystemExit(f"--from {directory}: {e}") from None
    finally:
        rng.state = state


def add_epochs(parser):
    parser.add_argument("--epochs", type=options.positive_int, default=None,
                        help=f"training epochs (default {nets.RECIPES['digits'].epochs}: the "
                             "recipe's; --quick: 1; ignored with --from)")


def recipe(epochs):
    """The shared digits recipe (``nets.RECIPES["digits"]``), with ``epochs`` unless None."""
    r = nets.RECIPES["digits"]
    return r if epochs is None else r.replace(epochs=epochs)


def add_arguments(parser):
    options.add_depths(parser, default=FULL["depths"])
    parser.set_defaults(depths=None)  # unset: FULL's or QUICK's
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--max-k", type=options.at_most(options.positive_int, MAX_K), default=10,
                        help=f"delete k = 1..MAX_K random blocks (default 10, at most {MAX_K}; "
                             "k beyond the net's shape-preserving blocks is skipped)")
    parser.add_argument("--draws", type=options.positive_int, default=None,
                        help="random draws per k (" + default("draws", FULL, QUICK) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="seconds instead of minutes: depth 14, one epoch on 128 images, 2 "
                             "draws, unless given (the numbers are noise; it checks that "
                             "everything runs)")
    options.add_seed(parser)
    options.add_device(parser)
    options.add_out(parser, "runs/lesion")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    options.check_device(args.device)
    options.check_out(args.out)
    check_from(args.from_dir, [f"{k}{d}" for d in s["depths"] for k in ("resnet", "plain")],
               args.seed)
    # The errors kept: of every draw at every k, for both nets of each depth (as Python floats,
    # in lists and in lesion.json).
    options.check_memory("--draws", 200 * 2 * len(s["depths"]) * s["draws"] * args.max_k,
                         f"the errors of {s['draws']} draws at each k")
    r = recipe(s["epochs"])
    trained = (f"trained {r.epochs} epoch{'s' if r.epochs != 1 else ''} (batch {r.batch_size}, "
               f"lr {r.lr} /10 at epochs {list(r.milestones)}, warm-up at {r.warmup}, momentum "
               f"{r.momentum}, weight decay {r.weight_decay})")
    with options.lock_out(args.out):
        print(f"lesion study on the digits: ResNet and plain net of depth "
              f"{', '.join(map(str, s['depths']))}, "
              + (f"loaded from {args.from_dir}" if args.from_dir else trained)
              + f"; k = 1..{args.max_k}, {s['draws']} draws; seed {args.seed}", flush=True)
        lesion.run(args.out, depths=s["depths"], recipe=r, from_dir=args.from_dir,
                   ks=tuple(range(1, args.max_k + 1)), draws=s["draws"], seed=args.seed,
                   limit=s["limit"], device=args.device, progress=args.progress)
    return 0
