"""Saving and loading arrays: ``.npz`` without pickle, written atomically.

``save(model, path)`` writes ``model.state_dict()``; ``load(path)`` returns it as a dict of NumPy
arrays (``load(path, model)`` also copies it into ``model``). Files are written to a temporary
name beside the target, flushed to disk and renamed over it, so a crash mid-write leaves the old
file intact, never a half-written one. Loading uses ``allow_pickle=False``: a file cannot make
Python run code. Metadata (a JSON-serialisable dict) travels as a string array.
"""
import contextlib
import json
import os
import tempfile

import numpy as np

_META_KEY = "__meta__"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path) + "-")
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only portable way to read the umask is to set it and put it back
    os.umask(mask)
    return mask


def save_figure(fig, path, **savefig_kwargs):
    """Render a matplotlib figure to ``path`` atomically (format from the suffix; PNG by default)."""
    import io as _bytes_io
    buffer = _bytes_io.BytesIO()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    fig.savefig(buffer, format=fmt, **savefig_kwargs)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def save_arrays(path, arrays, meta=None):
    """Write {name: array} (and an optional JSON-able ``meta`` dict) to ``path`` as .npz, atomically."""
    payload = {}
    for k, v in arrays.items():
        a = np.asarray(v.get() if hasattr(v, "get") and not isinstance(v, np.ndarray) else v)
        if a.dtype == object:
            raise TypeError(f"save_arrays: {k!r} is an object array, which cannot be saved without pickle")
        payload[k] = a
    if meta is not None:
        payload[_META_KEY] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **payload)


def load_arrays(path):
    """Read a file written by :func:`save_arrays`: returns ({name: array}, meta or None)."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{path}: not a minires .npz file or it holds pickled objects ({e})") from None
    meta = arrays.pop(_META_KEY, None)
    return arrays, (json.loads(str(meta)) if meta is not None else None)


def save(model, path):
    """Write ``model.state_dict()`` to ``path`` (.npz, no pickle, atomic)."""
    save_arrays(path, model.state_dict())


def load(path, model=None, strict=True):
    """The state dict stored at ``path``; when ``model`` is given, load it into the model and return the model."""
    state, _ = load_arrays(path)
    if model is None:
        return state
    model.load_state_dict(state, strict=strict)
    return model
