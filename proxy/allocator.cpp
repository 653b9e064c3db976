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
  // How long a freed page stays committed before mimalloc gives it back. Under a new TLS
  // connection per request, a page freed by one handshake is taken again by another within tens
  // of milliseconds: given back after 10 ms, that cost 0.8 to 1.8 page faults and 0.04 to 0.08
  // madvise() per handshake, and in a process of several threads each madvise() interrupts the
  // other cores to flush their TLBs. 50 ms: 0.02 to 0.6 faults and at most 0.01 madvise, 3 to
  // 29% more handshakes a second, and a higher peak (bench/run's tls-new x 256: 33.6 to 38.9 MiB
  // against 31.0 to 34.9, HAProxy's 39.1 to 39.4; docs/benchmarks.md, run 68). Longer delays left
  // more resident once the load stopped (docs/architecture.md, "Memory given back after a
  // burst").
  mi_option_set(mi_option_decommit_delay, 50);
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
