"""cupy.lib: only ``stride_tricks`` is emulated."""
from . import stride_tricks  # noqa: F401
