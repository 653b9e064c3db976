// A wake-up between two coroutines of one worker: one waits (`co_await signal.wait()`), another
// says "something changed" (notify). An HTTP/2 stream waits on one for its client's side (DATA,
// room in the flow-control window, its END_STREAM sent), its connection's write loop for output.
//
// No timer: a wait has no timeout of its own. A wait that must end at a time arms a Deadline of
// the worker and names the signal as its waiter; the worker's sweep notifies it when the deadline
// fires, as it cancels a socket's wait. A steady timer per wait (scheduled, then cancelled under
// the reactor's lock) cost about 1,100 instructions per wait, a stream waiting once or twice.
//
// Built against Boost.Asio 1.81, a wait is Asio's own timer operation (`wait_handler`) parked in
// the signal instead of a timer queue, and a notify hands it to the scheduler as a timer's expiry
// does. Parked waits count as the io_context's work, as a timer's do; the io_context's destruction
// destroys them with its other pending operations (SignalService::shutdown), so a coroutine frame
// suspended here is freed as one suspended on a socket is. Built against another version, a wait
// is a timer that never expires, cancelled by a notify: the same behaviour, at the timer's cost.
//
// Owner: the object that holds it (a stream, a connection); worker thread only. The waiter
// ignores cancellation slots (nothing in proxyd cancels these waits through one).
#pragma once

#include <boost/version.hpp>

#include <utility>

#include "net.hpp"
#include "worker.hpp"

#if BOOST_VERSION == 108100
#define PROXYD_PARKED_SIGNAL 1
#include <boost/asio/async_result.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/wait_handler.hpp>
#include <boost/asio/execution_context.hpp>
#endif

namespace proxyd {

#ifdef PROXYD_PARKED_SIGNAL

class Signal;

// The signals of one io_context that hold a parked wait, so that its destruction destroys them.
class SignalService : public net::detail::execution_context_service_base<SignalService> {
 public:
  explicit SignalService(net::execution_context& context)
      : execution_context_service_base(context),
        scheduler_(net::use_service<net::detail::scheduler>(context)) {}
  void shutdown() override;

 private:
  friend class Signal;
  net::detail::scheduler& scheduler_;
  Signal* parked_ = nullptr;  // a list through Signal::prev_ and next_
};

// The service of the worker whose executor this is. It takes a lock: once per connection.
inline SignalService& signal_service(Executor executor) {
  return net::use_service<SignalService>(executor.context());
}

class Signal final : public DeadlineWaiter {
 public:
  Signal(Executor executor, SignalService& service) : executor_(executor), service_(&service) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  // A wait still parked (its coroutine gone another way, never in proxyd) is destroyed, and its
  // work given back.
  ~Signal() {
    if (op_ == nullptr) return;
    take()->destroy();
    service_->scheduler_.work_finished();
  }

  // Wakes the wait in progress, else the next wait returns at once.
  void notify() {
    if (op_ == nullptr) {
      notified_ = true;
      return;
    }
    service_->scheduler_.post_deferred_completion(take());
  }
  void deadline_fired() override { notify(); }

  // True, and forgotten, if notified since the last wait: the caller need not wait. Saves a
  // turn of the worker's queue over wait(), which would complete at once.
  bool consume() { return std::exchange(notified_, false); }

  // co_await signal.wait(): until notified (at once, through the worker's queue, if notified
  // since the last wait). One wait at a time.
  auto wait() {
    return net::async_initiate<const net::use_awaitable_t<Executor>&, void(error_code)>(
        [this](auto handler) { park(std::move(handler)); }, net::use_awaitable_t<Executor>{});
  }

 private:
  friend class SignalService;

  template <class Handler>
  void park(Handler handler) {
    using Op = net::detail::wait_handler<Handler, Executor>;
    typename Op::ptr p = {net::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) Op(handler, executor_);
    if (consume()) {
      service_->scheduler_.post_immediate_completion(p.p, false);
    } else {
      op_ = p.p;
      service_->scheduler_.work_started();
      next_ = service_->parked_;
      if (next_ != nullptr) next_->prev_ = this;
      service_->parked_ = this;
    }
    p.v = p.p = nullptr;
  }
  // The parked wait, off the service's list.
  net::detail::scheduler_operation* take() {
    if (prev_ != nullptr) prev_->next_ = next_;
    else service_->parked_ = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
    prev_ = next_ = nullptr;
    return std::exchange(op_, nullptr);
  }

  Executor executor_;
  SignalService* service_;
  net::detail::scheduler_operation* op_ = nullptr;
  Signal* prev_ = nullptr;
  Signal* next_ = nullptr;
  bool notified_ = false;
};

// Each parked wait is taken off its signal before it is destroyed: destroying it frees the frame
// suspended on it, which may end other signals (a stream's) whose waits are on the list too.
inline void SignalService::shutdown() {
  while (parked_ != nullptr) parked_->take()->destroy();
}

#else

class SignalService {};

inline SignalService& signal_service(Executor) {
  static SignalService none;
  return none;
}

class Signal final : public DeadlineWaiter {
 public:
  Signal(Executor executor, SignalService&) : timer_(executor) {
    timer_.expires_at(Clock::time_point::max());
  }

  void notify() {
    notified_ = true;
    timer_.cancel();
  }
  void deadline_fired() override { notify(); }
  bool consume() { return std::exchange(notified_, false); }
  Task<void> wait() {
    if (!notified_) co_await timer_.async_wait(use_task);
    notified_ = false;
  }

 private:
  SteadyTimer timer_;
  bool notified_ = false;
};

#endif

}  // namespace proxyd
