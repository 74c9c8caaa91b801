"""The names and call signatures that real CuPy exposes, listed from its wheels on a machine
without a GPU: the strict CuPy stand-in of the tests (``tests/fake_cupy``) allows exactly these.

    python tools/cupy_namespace.py            # CuPy 13 and 14 -> tests/fake_cupy/namespace-13.json
                                              #                   and namespace-14.json
    python tools/cupy_namespace.py 14         # one major version

For each major version V: ``pip download cupy-cuda12x==V.* --no-deps`` into a temporary folder, a
throwaway virtual environment under /tmp with that wheel and its small pure-Python dependencies
(NumPy, fastrlock or cuda-pathfinder), and in it ``import cupy``, which needs neither a GPU nor
the CUDA libraries. :data:`LISTER` then runs in that environment and prints, as JSON:

- every public name of the modules in :data:`MODULES`: its kind (function, ufunc, class, module,
  constant), whether it is NumPy's own object (``cupy.float32 is numpy.float32``), and the
  parameters of a callable: ``[name, kind, has_default]``, from ``inspect.signature`` or, for
  CuPy's compiled (Cython) functions where that finds none, from the signature line that Cython
  writes at the top of the docstring (``_ndarray_base.sum(self, axis=None, dtype=None, ...)``);
- for a ufunc, which of ``reduce``, ``accumulate``, ``reduceat`` and ``at`` it supports (CuPy
  has the methods on every ufunc but raises NotImplementedError in most of them);
- every attribute of ``cupy.ndarray``, methods with their parameters, and its dunders.

The listing is kept in the repository, so the tests need neither the wheels nor a network.
Rerun this script when a new CuPy major version comes out (with its dependencies added to
:data:`DEPENDENCIES`), and add the version to the default of ``FAKE_CUPY_VERSIONS`` in
``tests/fake_cupy/cupy/_names.py``.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fake_cupy"
MODULES = ("cupy", "cupy.lib.stride_tricks", "cupy.linalg", "cupy.random", "cupy.cuda",
           "cupy.cuda.runtime", "cupy.cuda.memory", "cupyx")
DEPENDENCIES = {"13": ["numpy<2.6", "fastrlock>=0.5"], "14": ["numpy<2.6", "cuda-pathfinder==1.*"]}

LISTER = r'''
import ast, importlib, inspect, json, sys, types
import numpy, cupy

MODULES = sys.argv[1].split(",")


def split_top(text):
    """Split on the commas that are not inside brackets or quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def from_doc(obj):
    """Parameters from the signature line Cython puts first in a compiled function's docstring."""
    line = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0].replace("\\", "")
    if "(" not in line:
        return None
    head, rest = line.split("(", 1)
    if not head.replace(".", "").replace("_", "a").isalnum():
        return None
    depth, end = 1, None
    for i, ch in enumerate(rest):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            end = i
            break
    if end is None:
        return None
    params = []
    for p in split_top(rest[:end]):
        name, eq, default = p.partition("=")
        words = name.split()
        if not words:
            return None
        params.append(words[-1] + (eq + default if eq else ""))  # drop a Cython type: "int axis"
    if params and params[0] in ("self", "x") and hasattr(obj, "__objclass__"):
        params = params[1:] if params[0] == "self" else params
    try:
        fn = ast.parse("def f(" + ", ".join(params) + "): pass").body[0]
    except SyntaxError:
        return None
    a = fn.args
    out = []
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    for i, p in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append([p.arg, kind, i >= first_default])
    if a.vararg:
        out.append([a.vararg.arg, "VAR_POSITIONAL", False])
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append([p.arg, "KEYWORD_ONLY", d is not None])
    if a.kwarg:
        out.append([a.kwarg.arg, "VAR_KEYWORD", False])
    return out


def params_of(obj):
    """([name, kind, has_default], ...) and where they came from, or (None, why)."""
    generic = None
    try:
        sig = inspect.signature(obj)
        params = [[p.name, p.kind.name, p.default is not p.empty]
                  for p in sig.parameters.values()]
        if params and params[0][0] == "self":
            params = params[1:]
        if any(k not in ("VAR_POSITIONAL", "VAR_KEYWORD") for _, k, _ in params):
            return params, "inspect"
        generic = params  # (*args, **kwargs): the docstring may say more
    except (ValueError, TypeError):
        pass
    doc = from_doc(obj)
    if doc is not None:
        return doc, "docstring"
    if generic is not None:
        return generic, "inspect"
    return None, "unknown"


def entry(obj, name, numpy_twin):
    e = {}
    if isinstance(obj, types.ModuleType):
        e["kind"] = "module"
        return e
    e["numpy"] = numpy_twin is not None and obj is numpy_twin
    if isinstance(obj, cupy.ufunc):
        e.update(kind="ufunc", name=obj.name, nin=obj.nin, nout=obj.nout)
        # CuPy's ufunc.reduce/accumulate/reduceat/at (cupy/_core/_kernel.pyx) raise
        # NotImplementedError("`cupy_NAME.reduce` is not supported yet") but for these:
        e["reduce"] = obj.name in ("cupy_add", "cupy_multiply")
        e["accumulate"] = obj.name in ("cupy_add", "cupy_multiply")
        e["reduceat"] = obj.name == "cupy_add"
        e["at"] = getattr(obj, "_scatter_op", None)
    elif isinstance(obj, type):
        e["kind"] = "class"
    elif callable(obj):
        e["kind"] = "function"
    else:
        e["kind"] = "constant"
        e["type"] = type(obj).__name__
        return e
    if e["kind"] != "class" or not e["numpy"]:
        e["params"], e["params_from"] = params_of(obj)
    return e


listing = {"version": cupy.__version__, "numpy": numpy.__version__, "modules": {}}
for modname in MODULES:
    mod = importlib.import_module(modname)
    twin_name = modname.replace("cupyx", "numpy", 1).replace("cupy", "numpy", 1)
    try:
        twin = importlib.import_module(twin_name)
    except ImportError:
        twin = None
    names = {}
    for name in sorted(dir(mod)):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(mod, name)
        except Exception as e:  # a lazy attribute that needs a GPU
            names[name] = {"kind": "unavailable", "why": f"{type(e).__name__}: {e}"}
            continue
        names[name] = entry(obj, name, getattr(twin, name, None) if twin else None)
    listing["modules"][modname] = names

nd = {}
for name in sorted(dir(cupy.ndarray)):
    attr = inspect.getattr_static(cupy.ndarray, name)
    kind = type(attr).__name__
    if kind in ("getset_descriptor", "property", "member_descriptor"):
        nd[name] = {"kind": "property", "settable": kind != "property" or attr.fset is not None}
    elif callable(attr) or kind in ("method_descriptor", "classmethod", "wrapper_descriptor"):
        params, where = params_of(getattr(cupy.ndarray, name))
        nd[name] = {"kind": "method", "params": params, "params_from": where}
    else:
        nd[name] = {"kind": "attribute", "type": type(attr).__name__, "value": repr(attr)[:60]}
listing["ndarray"] = nd
listing["flags"] = sorted(n for n in dir(cupy._core.flags.Flags) if not n.startswith("_"))
listing["array_priority"] = cupy.ndarray.__array_priority__
print(json.dumps(listing, indent=1, sort_keys=True))
'''


def run(*cmd, **kw):
    shown = [str(c) if len(str(c)) < 200 else "<the lister>" for c in cmd]
    print("+", " ".join(shown), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def list_version(major, workdir):
    """The listing of cupy-cuda12x==major.* as a dict (downloads ~120 MB)."""
    wheels = Path(workdir) / f"wheels-{major}"
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels),
        f"cupy-cuda12x=={major}.*")
    (wheel,) = wheels.glob("cupy*.whl")
    venv = Path(workdir) / f"venv-{major}"
    run(sys.executable, "-m", "venv", str(venv))
    py = venv / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", "--no-deps", str(wheel))
    run(py, "-m", "pip", "install", "-q", *DEPENDENCIES[major])
    # Run from the temporary folder, with a clean path: the stand-in must not shadow real CuPy.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = run(py, "-c", LISTER, ",".join(MODULES), capture_output=True, text=True, cwd=workdir,
               env=env)
    return json.loads(proc.stdout)


def main(argv=None):
    majors = (argv if argv is not None else sys.argv[1:]) or ["13", "14"]
    for major in majors:
        if major not in DEPENDENCIES:
            raise SystemExit(f"cupy_namespace: no dependency list for CuPy {major}: add it to "
                             "DEPENDENCIES")
        with tempfile.TemporaryDirectory(prefix=f"cupy{major}-", dir="/tmp") as workdir:
            listing = list_version(major, workdir)
        path = OUT / f"namespace-{major}.json"
        path.write_text(json.dumps(listing, indent=1, sort_keys=True) + "\n")
        n = sum(len(v) for v in listing["modules"].values())
        print(f"CuPy {listing['version']}: {n} names, {len(listing['ndarray'])} ndarray "
              f"attributes -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
