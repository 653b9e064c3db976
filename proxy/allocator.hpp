// The process's allocator. proxyd links mimalloc (Debian's libmimalloc-dev) ahead of libc, so
// mimalloc's malloc, free and operator new serve the whole process: OpenSSL, nghttp2 and Asio's
// coroutine frames included. Per HTTP/2 stream it saves about a sixth of the instructions
// (docs/benchmarks.md, "Where a request's instructions go"); the HTTP/1.1 path allocates almost
// nothing either way. A build without it (PROXYD_MIMALLOC=OFF, and every sanitizer build) uses
// glibc's malloc; everything else is the same.
#pragma once

#include <string_view>

namespace proxyd::allocator {

// Sets the allocator's options; first thing in main().
void configure();

// "mimalloc" when malloc() really is mimalloc's (the override took effect), else "glibc".
std::string_view name();

// Gives the calling thread's free memory back to the system: mimalloc's collect on this thread's
// heap, or glibc's malloc_trim(0) over every arena. A walk over free memory, so called rarely
// (MemoryTrim decides when).
void release_free_memory();

}  // namespace proxyd::allocator
