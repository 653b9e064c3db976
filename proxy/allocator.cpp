// mimalloc or glibc behind one interface (allocator.hpp).
#include "allocator.hpp"

#include <cstdlib>

#if defined(PROXYD_MIMALLOC)
#include <mimalloc.h>
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

namespace proxyd::allocator {

void configure() {
#if defined(PROXYD_MIMALLOC)
  // How long a freed page stays committed. mimalloc's default (25 ms) left a burst of 256 new TLS
  // connections a second peaking at 63 MiB, against 52 MiB with glibc; 10 ms peaks at 56 MiB and
  // costs about 600 page faults a second under steady load (0 ms: 49 MiB, but 4,500 faults a
  // second). Measured with 2 workers, wrk and /proc/PID/status (docs/benchmarks.md).
  mi_option_set(mi_option_decommit_delay, 10);
#endif
}

std::string_view name() {
#if defined(PROXYD_MIMALLOC)
  // Linked is not enough: malloc() must resolve to mimalloc's, which takes libmimalloc ahead of
  // libc in the link order. A block from calloc() in mimalloc's heap shows that it does.
  void* probe = std::calloc(1, 16);
  const bool ours = mi_is_in_heap_region(probe);
  std::free(probe);
  if (ours) return "mimalloc";
#endif
  return "glibc";
}

void release_free_memory() {
#if defined(PROXYD_MIMALLOC)
  mi_collect(true);
#elif defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace proxyd::allocator
