"""User kernels on the stand-in: ``ElementwiseKernel`` and ``ReductionKernel`` run, by
translating their CUDA C to NumPy.

The translation covers the C that a fused elementwise kernel is written in: declarations
(``T d = g + wd * p;``), assignments (``=``, ``+=``, ...), arithmetic, comparisons, ``&&``,
``||``, ``!``, the ternary ``c ? a : b``, casts (``(T)x``, ``T(x)``, ``static_cast<T>(x)``),
literals with C's types (``1.0f`` float, ``1.0`` double, ``1`` int), and the math functions
``max min fmax fmin sqrt rsqrt exp log abs fabs pow fma floor ceil tanh`` (with or without the
``f`` suffix). Arithmetic follows C's usual conversions (``float * int`` is float, ``float *
double`` is double), and every assignment rounds to the variable's type, as the compiled kernel
does; the C types are CuPy's (``float32``/``float``, ``T`` bound to the arrays' dtype). Not
covered (a NotImplementedError says so): ``raw`` arrays, the index ``i``, loops, ``if``
statements, and a preamble.

The call follows CuPy's ``ElementwiseKernel.__call__`` (cupy/_core/_kernel.pyx): inputs are
device arrays or scalars (a host array raises ``TypeError: Unsupported type``), an array's
dtype must equal its parameter's type (``TypeError: Type is mismatched. ...``), outputs are
allocated C-ordered with the broadcast shape unless passed, and an output passed in is read and
written in place. What the translation cannot show: the compilation itself (NVRTC), and a real
GPU's rounding where the compiler fuses a multiply and an add.

Each distinct kernel (source and types) is "compiled" once: with ``CUPY_CACHE_DIR`` set, a
file per kernel is written there, as CuPy caches its binaries, so a dry run can count them.
"""
import re

import numpy as _np

from . import _core

C_TYPES = {
    "bool": _np.bool_, "char": _np.int8, "signed char": _np.int8, "unsigned char": _np.uint8,
    "short": _np.int16, "unsigned short": _np.uint16, "int": _np.int32,
    "unsigned int": _np.uint32, "unsigned": _np.uint32, "long": _np.int64,
    "long long": _np.int64, "unsigned long": _np.uint64, "unsigned long long": _np.uint64,
    "float": _np.float32, "double": _np.float64, "half": _np.float16,
    "int8": _np.int8, "int16": _np.int16, "int32": _np.int32, "int64": _np.int64,
    "uint8": _np.uint8, "uint16": _np.uint16, "uint32": _np.uint32, "uint64": _np.uint64,
    "float16": _np.float16, "float32": _np.float32, "float64": _np.float64,
    "int8_t": _np.int8, "int16_t": _np.int16, "int32_t": _np.int32, "int64_t": _np.int64,
    "uint8_t": _np.uint8, "uint16_t": _np.uint16, "uint32_t": _np.uint32,
    "uint64_t": _np.uint64, "size_t": _np.uint64, "ptrdiff_t": _np.int64,
}
FUNCTIONS = {
    "max": _np.fmax, "min": _np.fmin, "fmax": _np.fmax, "fmin": _np.fmin, "sqrt": _np.sqrt,
    "rsqrt": lambda x: 1 / _np.sqrt(x), "exp": _np.exp, "log": _np.log, "abs": _np.abs,
    "fabs": _np.abs, "pow": _np.power, "floor": _np.floor, "ceil": _np.ceil, "tanh": _np.tanh,
    "fma": lambda a, b, c: a * b + c,
}
for _f in list(FUNCTIONS):
    FUNCTIONS[_f + "f"] = FUNCTIONS[_f]

_TOKEN = re.compile(r"""
    (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fFuUlL]*)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>&&|\|\||==|!=|<=|>=|\+=|-=|\*=|/=|<<|>>|[-+*/%<>=!?:(),;~&|^{}])
  | (?P<space>\s+|//[^\n]*|/\*.*?\*/)
""", re.VERBOSE | re.DOTALL)


def tokenize(src):
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise NotImplementedError(f"CuPy stand-in kernel: cannot read {src[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
    return out


def c_promote(a, b):
    """C's usual arithmetic conversions for two NumPy dtypes."""
    a, b = _np.dtype(a), _np.dtype(b)
    if a.kind == "f" or b.kind == "f":
        floats = [t for t in (a, b) if t.kind == "f"]
        return max(max(floats, key=lambda t: t.itemsize), _np.dtype(_np.float32),
                   key=lambda t: t.itemsize)
    size = max(a.itemsize, b.itemsize, 4)
    unsigned = any(t.kind == "u" and t.itemsize >= size for t in (a, b))
    return _np.dtype(("u" if unsigned else "i") + str(size))


def _typed(v, t):
    t = _np.dtype(t)
    if isinstance(v, _np.ndarray):
        return v if v.dtype == t else v.astype(t)
    return t.type(v)


class _Parser:
    """Recursive descent over C's expression grammar; builds closures env -> value."""

    BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
              ("<<", ">>"), ("+", "-"), ("*", "/", "%")]

    def __init__(self, tokens, types):
        self.t, self.i, self.types = tokens, 0, types

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None)

    def take(self, want=None):
        tok = self.peek()
        if want is not None and tok[1] != want:
            raise NotImplementedError(f"CuPy stand-in kernel: expected {want!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def type_at(self, k=0):
        """(numpy dtype, tokens) of a type name starting at offset k, or (None, 0)."""
        words, n = [], 0
        while self.peek(k + n)[0] == "name":
            w = self.peek(k + n)[1]
            if w == "const":
                n += 1
                continue
            if " ".join(words + [w]) in C_TYPES or w in self.types or (
                    words and " ".join(words + [w]) in C_TYPES):
                words.append(w)
                n += 1
                continue
            break
        if not words:
            return None, 0
        name = " ".join(words)
        return (self.types[name] if name in self.types else C_TYPES[name]), n

    def expression(self):
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take("?")
            a = self.expression()
            self.take(":")
            b = self.expression()
            return lambda env: _where(cond(env), a(env), b(env))
        return cond

    def binary(self, level):
        if level == len(self.BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self.BINARY[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = _binary_op(op, left, right)
        return left

    def unary(self):
        kind, tok = self.peek()
        if tok in ("-", "+", "!", "~"):
            self.take()
            operand = self.unary()
            if tok == "-":
                return lambda env: _np.negative(operand(env))
            if tok == "+":
                return operand
            if tok == "!":
                return lambda env: _np.logical_not(operand(env))
            return lambda env: _np.invert(operand(env))
        if tok == "(":  # a cast, or parentheses
            t, n = self.type_at(1)
            if t is not None and self.peek(1 + n)[1] == ")":
                self.i += 1 + n + 1
                operand = self.unary()
                return lambda env: _typed(operand(env), t)
        return self.postfix()

    def postfix(self):
        kind, tok = self.peek()
        if kind == "num":
            self.take()
            return _literal(tok)
        if tok == "(":
            self.take("(")
            e = self.expression()
            self.take(")")
            return e
        if tok == "static_cast":
            self.take()
            self.take("<")
            t, n = self.type_at(0)
            self.i += n
            self.take(">")
            self.take("(")
            e = self.expression()
            self.take(")")
            return lambda env: _typed(e(env), t)
        if kind == "name":
            t, n = self.type_at(0)
            if t is not None and self.peek(n)[1] == "(":  # T(x): a constructor cast
                self.i += n
                self.take("(")
                e = self.expression()
                self.take(")")
                return lambda env: _typed(e(env), t)
            self.take()
            if self.peek()[1] == "(":
                fn = FUNCTIONS.get(tok)
                if fn is None:
                    raise NotImplementedError(f"CuPy stand-in kernel: no function {tok!r}")
                self.take("(")
                args = [self.expression()]
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expression())
                self.take(")")
                return lambda env: _call(fn, [a(env) for a in args])
            if tok == "i" or tok.startswith("_"):
                raise NotImplementedError(f"CuPy stand-in kernel: {tok!r} is not emulated")
            name = tok
            return lambda env: env[name]
        raise NotImplementedError(f"CuPy stand-in kernel: unexpected {tok!r}")


def _dtype_of(v):
    return v.dtype if hasattr(v, "dtype") else _np.dtype(type(v))


def _literal(tok):
    body = tok.rstrip("fFuUlL")
    suffix = tok[len(body):].lower()
    if "." in body or "e" in body.lower():
        return (lambda env, v=_np.float32(body): v) if "f" in suffix else (
            lambda env, v=_np.float64(body): v)
    t = _np.uint32 if "u" in suffix else _np.int32
    if "l" in suffix:
        t = _np.uint64 if "u" in suffix else _np.int64
    v = t(int(body))
    return lambda env: v


_ARITH = {"+": _np.add, "-": _np.subtract, "*": _np.multiply, "/": _np.divide,
          "%": _np.remainder, "&": _np.bitwise_and, "|": _np.bitwise_or, "^": _np.bitwise_xor,
          "<<": _np.left_shift, ">>": _np.right_shift}
_COMPARE = {"==": _np.equal, "!=": _np.not_equal, "<": _np.less, ">": _np.greater,
            "<=": _np.less_equal, ">=": _np.greater_equal}


def _binary_op(op, left, right):
    if op in ("&&", "||"):
        f = _np.logical_and if op == "&&" else _np.logical_or
        return lambda env: f(left(env), right(env))

    def run(env):
        a, b = left(env), right(env)
        t = c_promote(_dtype_of(a), _dtype_of(b))
        a, b = _typed(a, t), _typed(b, t)
        if op in _COMPARE:
            return _COMPARE[op](a, b)
        if op == "/" and t.kind in "iu":
            return _typed(_np.trunc(_np.true_divide(a, b)), t)  # C integer division truncates
        return _ARITH[op](a, b)
    return run


def _where(c, a, b):
    t = c_promote(_dtype_of(a), _dtype_of(b))
    return _np.where(c, _typed(a, t), _typed(b, t))


def _call(fn, args):
    t = args[0]
    t = _dtype_of(t)
    for a in args[1:]:
        t = c_promote(t, _dtype_of(a))
    if t.kind != "f":
        t = _np.dtype(_np.float64) if fn not in (_np.fmax, _np.fmin, _np.abs) else t
    r = fn(*[_typed(a, t) for a in args])
    return _typed(r, t)


def compile_statements(src, types):
    """[(target, op, declared dtype or None, expression)] of a kernel body."""
    tokens = tokenize(src)
    p = _Parser(tokens, types)
    statements = []
    while p.peek()[0] is not None:
        if p.peek()[1] in (";", "{", "}"):
            p.take()
            continue
        if p.peek()[1] in ("if", "for", "while", "return"):
            raise NotImplementedError(f"CuPy stand-in kernel: no {p.peek()[1]!r} statements; "
                                      "write the kernel with ternaries")
        t, n = p.type_at(0)
        declared = None
        if t is not None and p.peek(n)[0] == "name":
            declared = t
            p.i += n
        kind, target = p.take()
        if kind != "name":
            raise NotImplementedError(f"CuPy stand-in kernel: cannot assign to {target!r}")
        op = p.take()[1]
        if op not in ("=", "+=", "-=", "*=", "/="):
            raise NotImplementedError(f"CuPy stand-in kernel: unexpected {op!r}")
        statements.append((target, op, declared, p.expression()))
        if p.peek()[1] == ";":
            p.take()
    return statements


def parse_params(text):
    """[(ctype, name, raw)] of "T x, raw float32 w, float32 lr"."""
    out = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        raw = words[0] == "raw"
        words = words[1:] if raw else words
        if len(words) < 2:
            raise ValueError("Syntax error: %s" % part.strip())
        out.append((" ".join(words[:-1]), words[-1], raw))
    return out


_compiled = _core.compiled


def _bind(params, values, out_values):
    """The dtype of each parameter, placeholders (T) bound from the arrays, as CuPy's
    _decide_params_type_core does."""
    bound = {}
    for (ctype, name, _), v in list(zip(params[1], out_values)) + list(zip(params[0], values)):
        if not isinstance(v, _np.ndarray):
            continue
        if ctype in C_TYPES:
            if v.dtype != _np.dtype(C_TYPES[ctype]):
                raise TypeError("Type is mismatched. %s %s %s" % (name, v.dtype.type,
                                                                  _np.dtype(C_TYPES[ctype]).type))
        elif ctype in bound:
            if bound[ctype] != v.dtype:
                raise TypeError("Type is mismatched. %s %s %s %s" % (name, v.dtype.type,
                                                                     bound[ctype].type, ctype))
        else:
            bound[ctype] = v.dtype
    return bound


class ElementwiseKernel:
    """cupy.ElementwiseKernel, run by translating its operation to NumPy (see the module)."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True,
                 preamble="", no_return=False, return_tuple=False, **kwargs):
        if preamble:
            raise NotImplementedError("CuPy stand-in kernel: a preamble is not emulated")
        self.in_params, self.out_params = parse_params(in_params), parse_params(out_params)
        if any(raw for _, _, raw in self.in_params + self.out_params):
            raise NotImplementedError("CuPy stand-in kernel: raw arrays are not emulated")
        if any(n == "i" for _, n, _ in self.in_params + self.out_params):
            raise ValueError("Can not use 'i' as a parameter name")
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout
        self.name, self.operation = name, operation
        self.no_return, self.return_tuple = no_return, return_tuple
        self._programs = {}

    def _program(self, bound):
        key = tuple(sorted((k, str(v)) for k, v in bound.items()))
        if key not in self._programs:
            types = {k: v.type for k, v in bound.items()}
            self._programs[key] = compile_statements(self.operation, types)
            _compiled("elementwise", (self.name, self.operation, key))
        return self._programs[key]

    def __call__(self, *args, **kwargs):
        _core.count(f"ElementwiseKernel {self.name}")
        kwargs.pop("size", None)
        kwargs.pop("stream", None)
        block_size = kwargs.pop("block_size", 128)
        if kwargs:
            raise TypeError("Wrong arguments %s" % kwargs)
        if block_size <= 0:
            raise ValueError("block_size must be greater than zero")
        if len(args) not in (self.nin, self.nargs):
            raise TypeError("Wrong number of arguments for {!r}. It must be either {} or {} "
                            "(with outputs), but given {}.".format(self.name, self.nin,
                                                                   self.nargs, len(args)))
        values = [_core.kernel_arg(a) for a in args[:self.nin]]
        outs = list(args[self.nin:])
        for o in outs:
            if type(o) is not _core.ndarray:
                raise TypeError("Output arguments must be cupy.ndarray")
        out_values = [o._a for o in outs]
        bound = _bind((self.in_params, self.out_params), values, out_values)
        shape = _np.broadcast_shapes(*[v.shape for v in values + out_values
                                       if isinstance(v, _np.ndarray)])
        if outs and any(v.shape != shape for v in out_values):
            raise ValueError("Out shape is mismatched")
        dtype = {}
        for ctype, name, _ in self.in_params + self.out_params:
            if ctype in C_TYPES:
                dtype[name] = _np.dtype(C_TYPES[ctype])
            elif ctype in bound:
                dtype[name] = bound[ctype]
            else:
                raise TypeError(f"Cannot determine the type of {name} ({ctype})")
        if not outs:
            with _core.inside():
                outs = [_core.ndarray(shape, dtype[n]) for _, n, _ in self.out_params]
            out_values = [o._a for o in outs]
        env = {}
        for (_, name, _), v in zip(self.in_params, values):
            env[name] = _typed(v, dtype[name])
        for (_, name, _), v in zip(self.out_params, out_values):
            env[name] = v.copy()
        with _np.errstate(all="ignore"):
            for target, op, declared, expr in self._program(bound):
                value = expr(env)
                if op != "=":
                    value = _binary_op(op[0], lambda e: e[target], lambda e: value)(env)
                t = declared if declared is not None else dtype.get(target)
                if t is None and target not in env:
                    raise NotImplementedError(f"CuPy stand-in kernel: {target!r} is undeclared")
                if t is None:
                    t = _dtype_of(env[target])
                dtype.setdefault(target, _np.dtype(t))
                env[target] = _typed(value, t)
        for (_, name, _), o in zip(self.out_params, out_values):
            o[...] = env[name]
        if self.no_return:
            return None
        if self.nout == 1 and not self.return_tuple:
            return outs[0]
        return tuple(outs)


_REDUCE = {"a + b": (_np.add, 0), "max(a, b)": (_np.fmax, None), "min(a, b)": (_np.fmin, None)}


class ReductionKernel:
    """cupy.ReductionKernel for a sum, max or min (``reduce_expr`` "a + b", "max(a, b)",
    "min(a, b)") of ``map_expr``; ``post_map_expr`` "y = a" or another expression of ``a``."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
                 name="reduce_kernel", reduce_type=None, reduce_dims=True, preamble="",
                 options=()):
        if preamble:
            raise NotImplementedError("CuPy stand-in kernel: a preamble is not emulated")
        key = " ".join(reduce_expr.replace(",", ", ").split())
        if key not in _REDUCE:
            raise NotImplementedError(f"CuPy stand-in kernel: reduce_expr {reduce_expr!r}")
        self.reduce = _REDUCE[key][0]
        self.in_params, self.out_params = parse_params(in_params), parse_params(out_params)
        if len(self.out_params) != 1:
            raise NotImplementedError("CuPy stand-in kernel: one output only")
        self.nin = len(self.in_params)
        self.map_expr, self.post_map_expr = map_expr, post_map_expr
        self.name, self.reduce_type = name, reduce_type
        self._programs = {}

    def __call__(self, *args, out=None, axis=None, keepdims=False, stream=None):
        _core.count(f"ReductionKernel {self.name}")
        if len(args) != self.nin:
            raise TypeError("Wrong number of arguments for {!r}. It must be {}, but given "
                            "{}.".format(self.name, self.nin, len(args)))
        values = [_core.kernel_arg(a) for a in args]
        bound = _bind((self.in_params, []), values, [])
        types = {k: v.type for k, v in bound.items()}
        key = tuple(sorted((k, str(v)) for k, v in bound.items()))
        if key not in self._programs:
            self._programs[key] = (
                compile_statements("_m = " + self.map_expr, types),
                compile_statements(self.post_map_expr, dict(types)))
            _compiled("reduction", (self.name, self.map_expr, key))
        mapping, post = self._programs[key]
        env = {}
        for (ctype, name, _), v in zip(self.in_params, values):
            t = C_TYPES[ctype] if ctype in C_TYPES else bound.get(ctype)
            env[name] = _typed(v, t) if t is not None else v
        rtype = self.reduce_type
        rtype = _np.dtype(C_TYPES[rtype] if rtype in C_TYPES else bound[rtype]) if rtype else None
        octype = self.out_params[0][0]
        otype = _np.dtype(C_TYPES[octype] if octype in C_TYPES else bound[octype])
        with _np.errstate(all="ignore"):
            m = mapping[0][3](env)
            m = _np.broadcast_to(m, _np.broadcast_shapes(*[v.shape for v in env.values()
                                                          if isinstance(v, _np.ndarray)]))
            m = _typed(_np.asarray(m), rtype or m.dtype)
            a = self.reduce.reduce(m, axis=axis, keepdims=keepdims)
            penv = dict(env, a=_np.asarray(a))
            for target, op, declared, expr in post:
                penv[target] = _typed(expr(penv), declared or otype)
        result = _np.ascontiguousarray(_typed(_np.asarray(penv[self.out_params[0][1]]), otype))
        if out is not None:
            out._a[...] = result
            return out
        return _core.wrap(result)


def fuse(*args, **kwargs):
    """cupy.fuse: the function runs as it is (one call counted per call of the fused function)."""
    def decorate(fn):
        def fused(*a, **k):
            _core.count(f"fuse {fn.__name__}")
            depth = getattr(_core._state, "depth", 0)
            _core._state.depth = depth + 1
            try:
                return fn(*a, **k)
            finally:
                _core._state.depth = depth
        fused.__name__ = fn.__name__
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class RawKernel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the CuPy stand-in cannot run CUDA source: RawKernel")


class RawModule(RawKernel):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the CuPy stand-in cannot run CUDA source: RawModule")


for _cls in (ElementwiseKernel, ReductionKernel, RawKernel, RawModule):
    _cls.__module__ = "cupy"
