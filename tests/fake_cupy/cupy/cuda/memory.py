"""cupy.cuda.memory: a memory pool that holds nothing (the stand-in's arrays are NumPy's)."""
from .. import _module
from .._core import MemoryPointer  # noqa: F401


class MemoryPool:
    def __init__(self, allocator=None):
        self.limit = 0

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def n_free_blocks(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        self.limit = size or 0

    def get_limit(self):
        return self.limit


class PinnedMemoryPool(MemoryPool):
    pass


DEFAULT_POOL = MemoryPool()
DEFAULT_PINNED_POOL = PinnedMemoryPool()

__getattr__ = _module.restricted("cupy.cuda.memory", {})
