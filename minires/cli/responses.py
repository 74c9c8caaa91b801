"""``python -m minires responses``: std of every 3x3 layer's response, plain vs ResNet (Fig. 7)."""
import os

from ..experiments import nets, responses
from . import options
from .lesion import check_nets

HELP = "std of every 3x3 layer's response, plain vs ResNet (Figure 7)"


def add_arguments(parser):
    parser.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                        help="reuse the nets trained by `python -m minires degradation --out DIR` "
                             "(default: train them here with the degradation recipe)")
    options.add_seed(parser)
    options.add_depths(parser, default=responses.DEPTHS)
    parser.set_defaults(depths=None)  # unset: the full run's or --quick's
    q = responses.QUICK
    parser.add_argument("--quick", action="store_true",
                        help=f"a check that runs in seconds (numbers are noise): depths "
                             f"{' '.join(map(str, q['depths']))}, {q['epochs']} epochs on "
                             f"{q['limit']} images; --depths wins over it")
    options.add_device(parser)
    options.add_out(parser, "runs/responses")
    options.add_progress(parser)


def main(args):
    options.check_device(args.device)
    options.check_out(args.out)
    depths = args.depths
    if depths is None:
        depths = list(responses.QUICK["depths"] if args.quick else responses.DEPTHS)
    if args.from_dir is not None:
        if not os.path.isdir(args.from_dir):
            raise SystemExit(f"--from {args.from_dir}: not a folder")
        missing = [f"{n}-seed{args.seed}.npz" for n in nets.net_names(depths)
                   if not os.path.exists(nets.checkpoint_path(args.from_dir, n, args.seed))]
        if missing:
            raise SystemExit(f"--from {args.from_dir}: no {', '.join(missing)} (train them with "
                             f"`python -m minires degradation --out {args.from_dir}`, or pick "
                             "--seed/--depths)")
        check_nets(args.from_dir, nets.net_names(depths), args.seed)
    recipe = nets.RECIPES["digits"]
    if args.quick:
        recipe = recipe.replace(epochs=responses.QUICK["epochs"])
    with options.lock_out(args.out):
        responses.run(args.out, from_dir=args.from_dir, seed=args.seed, depths=depths,
                      recipe=recipe, limit=responses.QUICK["limit"] if args.quick else None,
                      device=args.device, progress=args.progress)
    return 0
