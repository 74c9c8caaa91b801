"""cupy.cuda: one device, streams and events that return at once, a memory pool that counts
nothing. Timings taken with these events measure NumPy on the CPU."""
import time as _time

from .. import _core, _module
from . import memory, runtime  # noqa: F401
from .memory import MemoryPointer, MemoryPool, PinnedMemoryPool  # noqa: F401


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        _core.count("cuda.Device.synchronize", kernel=False)

    def use(self):
        pass

    @property
    def mem_info(self):
        return runtime.memGetInfo()

    @property
    def compute_capability(self):
        return "00"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class Stream:
    null = None  # set below

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0

    def synchronize(self):
        _core.count("cuda.Stream.synchronize", kernel=False)

    def use(self):
        return self

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.t = None

    def record(self, stream=None):
        self.t = _time.perf_counter()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    return (end_event.t - start_event.t) * 1e3


def get_current_stream(device_id=-1):
    return Stream.null


def get_device_id():
    return 0


def is_available():
    return True


__getattr__ = _module.restricted("cupy.cuda", {})
