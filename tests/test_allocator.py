"""The host-memory setting: applied on glibc, a clear error for sizes mallopt cannot take."""

import platform

import pytest

from hackrobust.utils.allocator import keep_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_accepts_the_thresholds():
    assert keep_freed_memory(64 << 20) is True


@pytest.mark.parametrize("size", [0, -1, 2**31])
def test_sizes_outside_a_c_int_are_refused(size):
    with pytest.raises(ValueError, match="cache_bytes"):
        keep_freed_memory(size)
