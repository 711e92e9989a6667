"""The stable import name of :func:`diet_np.fast.host_memory.keep_freed_memory`
(glibc keeps freed memory; the module lives with the other fast paths)."""
from .fast.host_memory import keep_freed_memory

__all__ = ["keep_freed_memory"]
