"""What real CuPy exposes: its names and call signatures, from the listings of its wheels.

``namespace-13.json`` and ``namespace-14.json`` (beside this package) were written by
``tools/cupy_namespace.py`` from ``dir()`` and ``inspect.signature`` of real CuPy 13 and 14,
installed without a GPU. The stand-in allows a name only when every listed version has it, and a
call only when every version's signature accepts it: code that passes here runs on both.
``FAKE_CUPY_VERSIONS=13`` (or ``14``) checks against one of them.

A call is checked by calling a stub with the real parameter list (``def as_strided(x,
shape=None, strides=None): pass``), so a refused call raises the TypeError Python raises for
real CuPy's function: ``as_strided() got an unexpected keyword argument 'writeable'``.
"""
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
VERSIONS = tuple(v.strip() for v in os.environ.get("FAKE_CUPY_VERSIONS", "13,14").split(",")
                 if v.strip())
LISTINGS = {v: json.loads((HERE / f"namespace-{v}.json").read_text()) for v in VERSIONS}
REAL = ", ".join(f"CuPy {d['version']}" for d in LISTINGS.values())


def module_names(module):
    """{name: [entry per version]} for the names every version's ``module`` has."""
    per = [LISTINGS[v]["modules"].get(module, {}) for v in VERSIONS]
    return {n: [p[n] for p in per] for n in per[0] if all(n in p for p in per)}


def only_in_some(module, name):
    """The versions that have ``module.name``, when not all do ("" when none or all do)."""
    have = ["CuPy " + LISTINGS[v]["version"] for v in VERSIONS
            if name in LISTINGS[v]["modules"].get(module, {})]
    return ", ".join(have) if 0 < len(have) < len(VERSIONS) else ""


def no_attribute(module, name):
    """The AttributeError real CuPy raises for a name it lacks."""
    msg = f"module '{module}' has no attribute '{name}'"
    some = only_in_some(module, name)
    if some:
        msg += f"  [CuPy stand-in: {some} has it, not all of {REAL}]"
    return AttributeError(msg)


def ndarray_names():
    per = [LISTINGS[v]["ndarray"] for v in VERSIONS]
    return {n: [p[n] for p in per] for n in per[0] if all(n in p for p in per)}


_D = object()  # the default of a stub's optional parameter


def stub(name, params):
    """A function with real CuPy's parameter list that does nothing: calling it checks a call."""
    if params is None:
        return None
    parts, star = [], False
    for i, (pname, kind, has_default) in enumerate(params):
        if kind == "KEYWORD_ONLY" and not star:
            parts.append("*")
            star = True
        if kind == "VAR_POSITIONAL":
            parts.append("*" + pname)
            star = True
        elif kind == "VAR_KEYWORD":
            parts.append("**" + pname)
        else:
            parts.append(pname + ("=_D" if has_default else ""))
        if kind == "POSITIONAL_ONLY" and (i + 1 == len(params) or params[i + 1][1]
                                          != "POSITIONAL_ONLY"):
            parts.append("/")
    ns = {"_D": _D}
    exec(f"def {name}({', '.join(parts)}): pass", ns)
    return ns[name]


def checker(name, entries, label=None):
    """``check(*args, **kwargs)``: raises real CuPy's TypeError for a call some version refuses."""
    stubs = [(LISTINGS[v]["version"], stub(name, e.get("params")))
             for v, e in zip(VERSIONS, entries)]
    stubs = [(v, s) for v, s in stubs if s is not None]
    if not stubs:
        return None

    def check(*args, **kwargs):
        refused = []
        for version, s in stubs:
            try:
                s(*args, **kwargs)
            except TypeError as e:
                refused.append((version, e))
        if refused:
            version, e = refused[0]
            msg = str(e)
            if len(refused) < len(stubs):
                msg += (f"  [CuPy stand-in: CuPy {', '.join(v for v, _ in refused)} refuses "
                        "this call, not all of " + REAL + "]")
            raise TypeError(msg) from None

    return check
