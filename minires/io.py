"""Saving and loading arrays: ``.npz`` without pickle, written atomically.

``save(model, path)`` writes ``model.state_dict()``; ``load(path)`` returns it as a dict of NumPy
arrays (``load(path, model)`` also copies it into ``model``). Files are written to a temporary
name beside the target, flushed to disk and renamed over it, so a crash mid-write leaves the old
file intact, never a half-written one. Loading uses ``allow_pickle=False``: a file cannot make
Python run code. Metadata (a JSON-serialisable dict) travels as a string array.
"""

import contextlib
import glob
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

_META_KEY = "__meta__"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``, else delete it.

    An OSError (disk full, no permission) names ``path`` itself in its ``filename``, not the
    temporary file, so a message built from it says which file could not be written.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_tmp_prefix(path))
    except OSError as e:
        raise _naming(e, path) from None
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        # A write error (disk full, read-only) names the temporary file or none; a network or
        # other error raised by the caller's code is passed on as it is.
        if (
            isinstance(e, OSError)
            and e.errno is not None
            and e.filename in (None, tmp)
            and not isinstance(e, ConnectionError)
        ):
            raise _naming(e, path) from e
        raise


def _tmp_prefix(path):
    return ".tmp-" + os.path.basename(path) + "-"


def _naming(error, path):
    """The same kind of OSError (same errno, so the same subclass), with ``path`` as its
    filename."""
    return OSError(error.errno, error.strerror or str(error), path)


def remove_leftovers(path):
    """Delete the temporary files that :func:`atomic_write` left beside ``path`` when its process
    was killed mid-write (a kill skips the clean-up). Returns the names removed."""
    path = os.fspath(path)
    pattern = os.path.join(
        glob.escape(os.path.dirname(os.path.abspath(path))), glob.escape(_tmp_prefix(path)) + "*"
    )
    removed = []
    for leftover in glob.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)
            removed.append(leftover)
    return removed


def _umask():
    mask = os.umask(0)  # the only portable way to read the umask is to set it and put it back
    os.umask(mask)
    return mask


def save_figure(fig, path, **savefig_kwargs):
    """Render a matplotlib figure to ``path`` atomically (format from the suffix; PNG by
    default)."""
    import io as _bytes_io

    buffer = _bytes_io.BytesIO()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    fig.savefig(buffer, format=fmt, **savefig_kwargs)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def save_arrays(path, arrays, meta=None):
    """Write {name: array} (and an optional JSON-able ``meta`` dict) to ``path`` as .npz,
    atomically."""
    payload = {}
    for k, v in arrays.items():
        a = np.asarray(v.get() if hasattr(v, "get") and not isinstance(v, np.ndarray) else v)
        if a.dtype == object:
            raise TypeError(
                f"save_arrays: {k!r} is an object array, which cannot be saved without pickle"
            )
        payload[k] = a
    if meta is not None:
        payload[_META_KEY] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **payload)


def load_arrays(path):
    """Read a file written by :func:`save_arrays`: returns ({name: array}, meta or None).

    A file that is not such an .npz (empty, truncated, corrupt, a .npy, pickled objects, metadata
    that is not JSON) raises one ValueError naming it; a missing file raises FileNotFoundError.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file"
        )
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"{path}: the file is empty (a write that never finished?), not an .npz file"
        )
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive of named arrays")
        with z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{path}: not a minires .npz file: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise ValueError(
            f"{path}: truncated or corrupt, not a readable .npz file ({type(e).__name__}: {e})"
        ) from None
    meta = arrays.pop(_META_KEY, None)
    if meta is None:
        return arrays, None
    try:
        if meta.dtype.kind != "U" or meta.shape != ():
            raise ValueError(f"a {meta.dtype} array of shape {meta.shape}, not one string")
        return arrays, json.loads(str(meta))
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: its metadata is not JSON ({e})") from None


def save(model, path):
    """Write ``model.state_dict()`` to ``path`` (.npz, no pickle, atomic)."""
    if hasattr(path, "state_dict") and not hasattr(model, "state_dict"):
        raise TypeError(
            f"io.save: the {type(path).__name__} goes first; the call is io.save(model, path)"
        )
    save_arrays(path, model.state_dict())


def load(path, model=None, strict=True):
    """The state dict stored at ``path``; when ``model`` is given, load it into the model and return
    the model."""
    if hasattr(path, "state_dict"):
        raise TypeError(
            f"io.load: the {type(path).__name__} goes second; the call is io.load(path, model)"
        )
    state, _ = load_arrays(path)
    if model is None:
        return state
    model.load_state_dict(state, strict=strict)
    return model
