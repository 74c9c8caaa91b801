"""Saving and loading arrays: ``.npz`` without pickle, written atomically.

``save(model, path)`` writes ``model.state_dict()``; ``load(path)`` returns it as a dict of NumPy
arrays (``load(path, model)`` also copies it into ``model``). Files are written to a temporary
name beside the target, flushed to disk and renamed over it, so a crash mid-write leaves the old
file intact, never a half-written one. Loading uses ``allow_pickle=False``: a file cannot make
Python run code. Metadata (a JSON-serialisable dict) travels as a string array.

``lock_folder(folder)`` holds a run folder for one process: a second process that asks for it is
refused with a ``FolderInUse`` that names the first one's process id.
"""

import contextlib
import errno
import glob
import json
import os
import tempfile
import time
import zipfile
import zlib

import numpy as np

try:
    import fcntl  # Linux and macOS; elsewhere the lock falls back on the process id alone
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_META_KEY = "__meta__"
LOCK_NAME = ".minires-lock"  # the lock file a run puts in its folder while it runs


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
    except RecursionError:  # lists nested thousands deep: no metadata minires writes
        raise ValueError(f"{path}: its metadata is nested too deep to be minires's") from None


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


# -- one run per folder ----------------------------------------------------------------------------


class FolderInUse(OSError):
    """The folder is held by another live process (``pid``, None when its lock file is
    unreadable)."""

    def __init__(self, folder, pid):
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(errno.EBUSY, f"in use by another run ({who})", os.fspath(folder))
        self.folder, self.pid = os.fspath(folder), pid

    def __str__(self):
        return f"{self.filename}: {self.strerror}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except (OSError, OverflowError):
        return False
    return True


def _fresh(path, seconds=10):
    """True if ``path`` was written in the last ``seconds`` (a lock file whose process id is not
    in it yet)."""
    try:
        return time.time() - os.stat(path).st_mtime < seconds
    except OSError:
        return False


def _read_pid(path):
    try:
        with open(path) as f:
            text = f.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class lock_folder:
    """``with lock_folder(folder):`` this process holds ``folder`` (made if missing) until the end.

    The lock is ``flock`` on ``folder/.minires-lock``, which holds the holder's process id. The
    kernel releases it when the holder exits, however it exits (``kill -9`` too), so a lock file
    left by a killed run is simply taken over. Where ``flock`` is missing (Windows, some network
    file systems), the lock file is created exclusively and a file naming a process that is no
    longer alive is taken over. A folder held by a live process raises ``FolderInUse``. On
    leaving, the lock file is removed, and the folder too if this lock made it and it is empty.
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd, self._made = None, False

    def __enter__(self):
        if not os.path.isdir(self.folder):
            os.makedirs(self.folder, exist_ok=True)
            self._made = True
        try:
            self._acquire()
        except BaseException:
            self._remove_folder()
            raise
        return self

    def __exit__(self, *exc):
        self.release()

    def _acquire(self):
        if fcntl is not None:
            try:
                return self._acquire_flock()
            except OSError as e:
                if isinstance(e, FolderInUse) or e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP,
                                                                  errno.ENOSYS):
                    raise
        self._acquire_pid_file()

    def _acquire_flock(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FolderInUse(self.folder, _read_pid(self.path)) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file as we opened it: a lock on a file
            # that is no longer in the folder holds nothing, so open the folder's file again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _acquire_pid_file(self):
        for _ in range(2):  # the second time after removing a dead process's file
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and _pid_alive(pid) or pid is None and _fresh(self.path):
                    raise FolderInUse(self.folder, pid) from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)  # stale: its process is gone
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            self._fd = -1
            return
        raise FolderInUse(self.folder, _read_pid(self.path))

    def release(self):
        """Give the folder up (also what leaving the ``with`` does); safe to call twice."""
        if self._fd is None:
            return
        # Removed while still held, so no other process can be holding the file we remove.
        with contextlib.suppress(OSError):
            os.remove(self.path)
        if self._fd >= 0:
            os.close(self._fd)  # closing releases the flock
        self._fd = None
        self._remove_folder()

    def _remove_folder(self):
        if self._made:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)  # only if it is still empty
            self._made = False
