"""``python -m minires summary MODEL``: a model's layers, output shapes, parameters and
mult-adds."""

from .. import models
from .options import at_most, positive_int

HELP = "layers, output shapes, parameters and mult-adds of a model (Table 1)"
# The largest --size: an image of 3 x 100,000 x 100,000 pixels is 30 billion numbers, far more
# than any net here is summarised for (and near what a NumPy shape can describe at all).
MAX_SIZE = 100_000


def add_arguments(parser):
    parser.add_argument(
        "model",
        choices=sorted(models.BUILDERS),
        metavar="model",
        help="resnet18/34/50/101/152, resnet20/32/44/56/110/1202, plain18..., plain20...",
    )
    parser.add_argument(
        "--size",
        type=at_most(positive_int, MAX_SIZE),
        default=None,
        help="input height and width in pixels (default: 32 for CIFAR nets, else 224; at most "
        f"{MAX_SIZE})",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=1,
        choices=[1, 2],
        help="1: one row per stage; 2: one row per block",
    )
    parser.add_argument(
        "--paper-layout",
        action="store_true",
        help="bottlenecks with the stride in the first 1x1 conv, as in the paper "
        "(default: torchvision's, stride in the 3x3 conv); no effect on nets without bottlenecks",
    )


def main(args):
    model = models.get_model(args.model)
    has_bottlenecks = any(
        isinstance(m, (models.Bottleneck, models.PreActBottleneck))
        for _, m in model.named_modules()
    )
    note = ""
    if args.paper_layout and has_bottlenecks:
        model = models.get_model(args.model, stride_in_1x1=True)
        note = " (the paper's bottleneck layout: stride in the first 1x1 conv)"
    elif args.paper_layout:
        note = " (no bottlenecks: --paper-layout changes nothing)"
    size = args.size or (32 if model.maxpool is None else 224)  # CIFAR nets have no max-pool stem
    print(f"{args.model}{note}")
    print(models.summary(model, (3, size, size), depth=args.depth))
    return 0
