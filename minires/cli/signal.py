"""``python -m minires signal``: signal propagation plots at initialisation (Brock et al. 2021):
the residual stream's channel mean and variance block by block, with batch norm, without it, with
SkipInit and with Fixup."""
from ..experiments import signal
from . import options
from .lesion import default, settings

HELP = ("signal propagation at initialisation: the residual stream's channel mean and variance "
        "per block, batch norm vs none vs SkipInit vs Fixup")
FULL = {"depths": list(signal.DEPTHS), "batch_size": 128}
QUICK = {"depths": [8, 14], "batch_size": 16}


def add_arguments(parser):
    options.add_depths(parser, default=signal.DEPTHS)
    parser.set_defaults(depths=None)  # unset: FULL's, or QUICK's with --quick
    options.add_variants(parser, signal.VARIANTS)
    parser.add_argument("--batch-size", type=options.at_most(options.positive_int, 1438),
                        default=None, help="images in the batch (at least 2: batch norm needs "
                        "a batch; at most the 1438 training digits; "
                        + default("batch_size", FULL, QUICK) + ")")
    parser.add_argument("--gaussian", action="store_true",
                        help="N(0, 1) noise of the digits' shape instead of training digits")
    parser.add_argument("--quick", action="store_true",
                        help="depths 8 and 14, a batch of 16, unless given (seconds)")
    options.add_seed(parser, what="seeds the weights (and the noise of --gaussian)")
    options.add_device(parser)
    options.add_out(parser, "runs/signal", "output folder for the PNGs and signal.json")
    options.add_progress(parser)


def main(args):
    s = settings(args, FULL, QUICK)
    if s["batch_size"] < 2:
        raise SystemExit(f"--batch-size: must be >= 2 (batch norm needs a batch), "
                         f"got {s['batch_size']}")
    options.check_device(args.device)
    with options.lock_out(args.out):
        signal.run(args.out, depths=s["depths"], variants=tuple(args.variants),
                   batch_size=s["batch_size"], gaussian=args.gaussian, seed=args.seed,
                   device=args.device, progress=args.progress)
    return 0
