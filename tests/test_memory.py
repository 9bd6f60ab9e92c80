"""The process's allocators: Arrow on the C library's malloc, which keeps freed memory for reuse."""

from __future__ import annotations

import sys

import pyarrow as pa
import pytest

from icare import memory


def test_arrow_allocates_with_malloc_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    memory.configure_allocators()
    assert pa.default_memory_pool().backend_name == "system"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux) only")
def test_glibc_accepts_the_settings_that_keep_freed_memory():
    mallopt = memory._glibc_mallopt()
    assert mallopt is not None
    assert mallopt(memory._M_MMAP_MAX, 0) == 1  # 1: accepted
    assert mallopt(memory._M_TRIM_THRESHOLD, memory._KEEP_ALL) == 1
