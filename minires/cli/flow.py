"""``python -m minires flow``: gradient norm per layer at initialisation, plain vs residual."""
from ..experiments import flow
from . import options

HELP = "gradient norms per layer, plain vs residual, at several depths"


def add_arguments(parser):
    options.add_depths(parser, default=flow.DEPTHS)
    parser.add_argument("--no-bn", action="store_true",
                        help="remove every batch norm (replace it by identity)")
    parser.add_argument("--init", choices=flow.INITS, default="he",
                        help="conv weight init: he = N(0, 2/fan_out), the paper's (default); "
                             "xavier = Glorot")
    parser.add_argument("--batch-size", type=options.positive_int, default=16,
                        help="random images per batch (default 16; at least 2: batch norm needs "
                             "a batch)")
    options.add_seed(parser, what="seeds the weights and the random batch")
    options.add_device(parser)
    options.add_out(parser, "runs/flow", "output folder for flow.png and flow.json")


def main(args):
    # Every option checked before any work, so a typo fails at once with the option's name.
    if args.batch_size < 2:
        raise SystemExit(f"--batch-size must be >= 2 (batch norm needs a batch), "
                         f"got {args.batch_size}")
    options.check_memory("--batch-size", options.conv_net_bytes(
        max(args.depths), (16, 32, 64), 32, args.batch_size),
        f"a batch of {args.batch_size} 3x32x32 images through the {max(args.depths)}-layer nets")
    options.check_device(args.device)
    with options.lock_out(args.out):
        flow.run(args.out, depths=args.depths, batch_norm=not args.no_bn, init=args.init,
                 batch_size=args.batch_size, seed=args.seed, device=args.device)
    return 0
