"""cupy.cuda.runtime: one device, 8 GiB, named for what it is."""
from .. import _module

TOTAL = 8 << 30


class CUDARuntimeError(RuntimeError):
    def __init__(self, status):
        self.status = status
        super().__init__(f"cudaError {status}")


def getDeviceCount():
    return 1


def getDevice():
    return 0


def getDeviceProperties(device):
    return {"name": b"CuPy stand-in (NumPy on the CPU)", "totalGlobalMem": TOTAL,
            "multiProcessorCount": 1, "major": 0, "minor": 0}


def runtimeGetVersion():
    return 0


def driverGetVersion():
    return 0


def memGetInfo():
    return TOTAL, TOTAL


def deviceSynchronize():
    pass


__getattr__ = _module.restricted("cupy.cuda.runtime", {})
