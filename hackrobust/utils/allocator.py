"""Keep freed host memory for reuse instead of handing it back to the OS after every step.

glibc serves large blocks (a batch's activations: tens of MB) with `mmap` and trims the heap
as soon as its free top passes a small threshold, so a CPU training step unmaps its activations
and the next one faults fresh zeroed pages in again; on small models that kernel time can be a
large share of a CPU run (experiments/speed_study.py measures it). Raising the three thresholds
(`mallopt`'s M_MMAP_THRESHOLD, M_TRIM_THRESHOLD and M_TOP_PAD) makes freed blocks stay in the
heap, as PyTorch's CUDA caching allocator does on the GPU.
The numbers are unchanged: only where the memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3


def keep_freed_memory(cache_bytes: int = 1 << 30) -> bool:
    """Let glibc keep up to `cache_bytes` of freed memory; True if applied.

    Blocks up to `cache_bytes` come from the heap instead of `mmap`, the heap grows by
    `cache_bytes` at a time, and is trimmed only when `2 x cache_bytes` at its top are free.
    Elsewhere than glibc (macOS, musl, Windows) it does nothing and returns False.
    """
    if not 0 < cache_bytes < 2**31:
        raise ValueError(f"cache_bytes must be in (0, 2**31) (a C int), got {cache_bytes}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False  # musl has mallopt as a stub; macOS and Windows have none
    mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = {
        M_MMAP_THRESHOLD: cache_bytes,
        M_TOP_PAD: cache_bytes,
        M_TRIM_THRESHOLD: min(2 * cache_bytes, 2**31 - 1),
    }
    applied = all(mallopt(param, value) == 1 for param, value in settings.items())
    if not applied:
        log.warning("glibc refused the malloc thresholds %s; defaults kept", settings)
    return applied
