// Include from a .cpp file whose coroutines use Asio's awaitable frames (never from a header).
// GCC 12 inlines an awaitable frame's operator new (Asio's aligned allocation) and its operator
// delete differently and reports them as mismatched (with -fsanitize=address, at every coroutine's
// end): a false positive that -Werror would turn into a failed build. The pragma holds for the rest
// of the including file only.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
