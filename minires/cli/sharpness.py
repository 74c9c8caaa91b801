"""``python -m minires sharpness``: lambda_max of the training loss's Hessian, for trained nets and
along full-batch gradient descent (the edge of stability, Cohen et al. 2021)."""
from ..experiments import nets, sharpness
from . import options
from .lesion import add_epochs, add_from, check_from, recipe
from .rank import command_line

HELP = ("the largest Hessian eigenvalue of the training loss: trained plain nets and ResNets, and "
        "along full-batch gradient descent, where it rises to 2/lr (Cohen et al. 2021)")
DEFAULTS = {"lrs": list(sharpness.LRS), "steps": sharpness.STEPS, "every": sharpness.EVERY,
            "width": sharpness.WIDTH, "depths": list(sharpness.DEPTHS), "epochs": None,
            "images": sharpness.IMAGES, "seeds": [0], "max_iters": None,
            "limit": None}
QUICK = {"lrs": [0.5], "steps": 20, "every": 10, "width": 16, "depths": [8], "epochs": 1,
         "images": 32, "max_iters": 4, "limit": 128}


def add_arguments(parser):
    parser.add_argument("--parts", nargs="+", choices=("edge", "trained"),
                        default=["edge", "trained"],
                        help="edge: full-batch gradient descent on a small net; trained: the "
                             "trained plain nets and ResNets (default: both)")
    parser.add_argument("--lrs", type=options.positive_float, nargs="+", default=None,
                        metavar="LR", help="learning rates of the gradient descent runs "
                        f"(default: {' '.join(map(str, sharpness.LRS))})")
    parser.add_argument("--steps", type=options.positive_int, default=None,
                        help=f"gradient descent steps per run (default {sharpness.STEPS})")
    parser.add_argument("--every", type=options.positive_int, default=None,
                        help=f"measure lambda_max every EVERY steps (default {sharpness.EVERY})")
    parser.add_argument("--width", type=options.positive_int, default=None,
                        help=f"units per hidden layer of the tanh net (default {sharpness.WIDTH})")
    parser.add_argument("--loss", choices=sorted(sharpness.LOSSES), default="mse",
                        help="mse: the square loss (default, Cohen et al.'s); ce: cross-entropy")
    parser.add_argument("--depths", type=options.cifar_depth, nargs="+", default=None,
                        metavar="DEPTH", help="depths of the trained nets (default: "
                        f"{' '.join(map(str, sharpness.DEPTHS))})")
    add_from(parser)
    add_epochs(parser)
    parser.add_argument("--images", type=options.positive_int, default=None,
                        help="training digits the trained nets' loss is measured on (default "
                             f"{sharpness.IMAGES})")
    parser.add_argument("--seeds", type=options.nonnegative_int, nargs="+", default=None,
                        metavar="SEED", help="seeds of the runs and of the trained nets "
                        "(default: 0)")
    parser.add_argument("--eps", type=options.positive_float, default=sharpness.EPS,
                        help="step of the central difference H v ~ (g(w + eps v) - g(w - eps "
                             f"v)) / (2 eps) for the smooth tanh net (default {sharpness.EPS:g})")
    parser.add_argument("--eps-trained", type=options.positive_float,
                        default=sharpness.EPS_TRAINED,
                        help="the same for the trained ReLU nets, whose kinks a tiny eps finds "
                             f"(default {sharpness.EPS_TRAINED:g})")
    parser.add_argument("--max-iters", type=options.positive_int, default=None,
                        help="Hessian-vector products per measurement at most (default "
                             f"{sharpness.EDGE_MAX_ITERS} along gradient descent, "
                             f"{sharpness.MAX_ITERS} for a trained net)")
    parser.add_argument("--tol", type=options.positive_float, default=sharpness.TOL,
                        help="stop power iteration when ||H v - theta v|| <= TOL |theta| "
                             f"(default {sharpness.TOL:g})")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: 20 steps of a width-16 net, a depth-8 pair trained one "
                             "epoch on 128 images (the numbers are noise)")
    options.add_device(parser)
    options.add_out(parser, "runs/sharpness")
    options.add_progress(parser)


def main(args):
    s = dict(DEFAULTS)
    if args.quick:
        s.update(QUICK)
    for key in s:  # an explicit option wins over --quick
        if getattr(args, key, None) is not None:
            s[key] = getattr(args, key)
    options.check_device(args.device)
    if "trained" in args.parts:
        for seed in s["seeds"]:
            check_from(args.from_dir, nets.net_names(s["depths"]), seed)
    r = recipe(s["epochs"])
    parts = []
    if "edge" in args.parts:
        parts.append(f"full-batch gradient descent on the {s['width']}-wide tanh net, lr "
                     f"{', '.join(map(str, s['lrs']))}, {s['steps']} steps, lambda_max every "
                     f"{s['every']}")
    if "trained" in args.parts:
        parts.append(f"the plain nets and ResNets of depth {', '.join(map(str, s['depths']))} "
                     + (f"loaded from {args.from_dir}" if args.from_dir
                        else f"trained here ({r.epochs} epoch{'s' if r.epochs != 1 else ''} of the "
                              "digits recipe)")
                     + f", loss on {s['images']} training digits")
    print(f"sharpness: {'; '.join(parts)}; seeds {', '.join(map(str, s['seeds']))}", flush=True)
    with options.lock_out(args.out):
        sharpness.run(args.out, parts=args.parts, lrs=s["lrs"], steps=s["steps"],
                      every=s["every"], width=s["width"], loss=args.loss, depths=s["depths"],
                      recipe=r, from_dir=args.from_dir, images=s["images"], seeds=s["seeds"],
                      eps=args.eps, eps_trained=args.eps_trained, max_iters=s["max_iters"],
                      tol=args.tol, limit=s["limit"],
                      device=args.device, command=command_line("sharpness"),
                      progress=args.progress)
    return 0
