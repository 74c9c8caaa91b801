"""``python -m minires flow``: gradient norm per layer at initialisation, plain vs residual."""
import time

from .. import flow
from . import options

HELP = "gradient norms per layer, plain vs residual, at several depths"


def add_arguments(parser):
    options.add_depths(parser, default=[20, 56, 110])
    parser.add_argument("--no-bn", action="store_true", help="remove every batch norm (replace it by identity)")
    parser.add_argument("--init", choices=flow.INITS, default="he",
                        help="conv weight init: he = N(0, 2/fan_out), the paper's (default); xavier = Glorot")
    parser.add_argument("--batch-size", type=options.positive_int, default=16,
                        help="random images per batch (default 16; at least 2: batch norm needs a batch)")
    options.add_seed(parser, what="seeds the weights and the random batch")
    options.add_device(parser)
    options.add_out(parser, "runs/flow", "output folder for flow.png and flow.json")


def main(args):
    # Every option checked before any work, so a typo fails at once with the option's name.
    if args.batch_size < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), got {args.batch_size}")
    options.check_device(args.device)
    options.check_out(args.out)
    start = time.perf_counter()
    bn = "no batch norm" if args.no_bn else "batch norm in train mode"
    print(f"gradient flow at initialisation: {bn}, {args.init} init, one batch of {args.batch_size} "
          f"random 3x32x32 images with random labels, seed {args.seed}")
    runs, png_path, json_path = flow.run(
        args.depths, batch_norm=not args.no_bn, init=args.init, batch_size=args.batch_size, seed=args.seed,
        device=args.device, out=args.out,
        progress=lambda r: print(f"  {r['name']}: done ({time.perf_counter() - start:.1f} s)", flush=True))
    print(flow.format_table(runs))
    print(f"wrote {png_path} and {json_path} ({time.perf_counter() - start:.1f} s)")
    return 0
