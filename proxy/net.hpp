// Asio/Beast aliases for the data plane: concrete executors everywhere (`io_context::executor_type`
// instead of `any_io_executor` saves a type-erased call per operation; docs/architecture.md,
// "Performance choices").
// Only data-plane .cpp files include this; plain-struct headers never do.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace proxyd {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

using Executor = net::io_context::executor_type;
template <class T = void>
using Task = net::awaitable<T, Executor>;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using SteadyTimer = net::basic_waitable_timer<std::chrono::steady_clock,
                                              net::wait_traits<std::chrono::steady_clock>, Executor>;

// Completion token for coroutines: errors come back as a tuple, never as exceptions (rule 5).
inline constexpr auto use_task = net::as_tuple(net::use_awaitable_t<Executor>{});

}  // namespace proxyd
