"""Command line: ``python -m minires {summary,train,flow,degradation} ...``.

Every long command shows progress, says where its outputs went, and takes ``--out DIR``.
"""
import argparse
import sys


def _summary(args):
    from .models import get_model, summary
    kwargs = {"stride_in_1x1": True} if args.paper_layout else {}
    model = get_model(args.model, **kwargs)
    size = args.size or (32 if model.maxpool is None else 224)  # CIFAR nets have no max-pool stem
    print(f"{args.model}" + (" (the paper's bottleneck layout: stride in the first 1x1 conv)" if args.paper_layout else ""))
    print(summary(model, (3, size, size), depth=args.depth))


def _size(text):
    size = int(text)
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {size}")
    return size


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minires", description="ResNet from scratch in NumPy/CuPy.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("summary", help="layers, output shapes, parameters and mult-adds of a model (Table 1)")
    from .models import BUILDERS
    s.add_argument("model", choices=sorted(BUILDERS), metavar="model",
                   help="resnet18/34/50/101/152, resnet20/32/44/56/110/1202, plain18..., plain20...")
    s.add_argument("--size", type=_size, default=None, help="input height and width (default: 32 for CIFAR nets, else 224)")
    s.add_argument("--depth", type=int, default=1, choices=[1, 2], help="1: one row per stage; 2: one row per block")
    s.add_argument("--paper-layout", action="store_true",
                   help="bottlenecks with the stride in the first 1x1 conv, as in the paper (default: torchvision's)")
    s.set_defaults(run=_summary)

    from . import degradation, flow, train
    train.add_arguments(sub.add_parser("train", help="train a model (default: resnet20 on the bundled digits)"))
    flow.add_arguments(sub.add_parser("flow", help="gradient norms per layer, plain vs residual, at several depths"))
    degradation.add_arguments(sub.add_parser("degradation", help="plain vs residual training curves (Figure 6 in miniature)"))
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
