// A wake-up between two coroutines of one worker: one waits (`co_await signal.wait()`), another
// says "something changed" (notify). An HTTP/2 stream waits on one for its client's side (DATA,
// room in the flow-control window, its END_STREAM sent), its connection's write loop for output.
//
// No timer: a wait has no timeout of its own. A wait that must end at a time arms a Deadline of
// the worker that names the signal as its waiter; when the sweep fires that deadline, it wakes the
// wait (deadline_fired) as it cancels a socket's wait. After waking, the waiter tells the two
// apart with consume(): true if a notify came, which wins over a deadline that fired in the same
// turn (as a timer's expiry did not count once the notify was in). A steady timer per wait
// (scheduled, then cancelled under the reactor's lock, in a coroutine frame of its own) cost about
// 1,100 instructions per wait, a stream waiting once or twice.
//
// Built against Boost.Asio 1.81, a wait is Asio's own timer operation (`wait_handler`) parked in
// the signal instead of a timer queue, and a wake-up hands it to the scheduler as a timer's expiry
// does. Parked waits count as the io_context's work, as a timer's do; the io_context's destruction
// destroys them with its other pending operations (SignalService::shutdown), and the coroutine
// suspended on one is unwound as one suspended on a socket is. A cancellation through the
// waiter's slot (an awaitable operator cancelling its other branch) ends the wait with
// operation_aborted, as it ends a timer's. Built against another version, a wait is a timer that
// never expires, cancelled by a wake-up: the same behaviour, at the timer's cost (that branch is
// not built on Debian 12, whose Boost is 1.81).
//
// Owner: the object that holds it (a stream, a connection); worker thread only. One wait at a
// time (a second aborts the process), and the signal outlives it.
#pragma once

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <boost/version.hpp>

#include <cstdlib>
#include <utility>

#include "net.hpp"
#include "worker.hpp"

#if BOOST_VERSION == 108100
#define PROXYD_PARKED_SIGNAL 1
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
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
  // Never with a wait parked in proxyd: its coroutine holds what holds the signal. Were one
  // parked, it is destroyed and its work given back (the coroutine is unwound on a later turn).
  ~Signal() {
    if (op_ == nullptr) return;
    take()->destroy();
    service_->scheduler_.work_finished();
  }

  // Wakes the wait in progress; counted until consume() either way.
  void notify() {
    notified_ = true;
    if (op_ != nullptr) service_->scheduler_.post_deferred_completion(take());
  }
  // The waiter's deadline fired: wakes the wait in progress, without counting as a notify.
  void deadline_fired() override {
    if (op_ != nullptr) service_->scheduler_.post_deferred_completion(take());
  }

  // True, and forgotten, if notified since the last call. Before a wait: true means no need to
  // wait. After one: false means only the deadline ended it.
  bool consume() { return std::exchange(notified_, false); }

  // co_await signal.wait(): until notified or the deadline fires (at once, through the worker's
  // queue, if notified since the last consume()). Throws operation_aborted when cancelled.
  auto wait() {
    return net::async_initiate<const net::use_awaitable_t<Executor>&, void(error_code)>(
        [this](auto handler) { park(std::move(handler)); }, net::use_awaitable_t<Executor>{});
  }

 private:
  friend class SignalService;

  // Ends its parked wait with operation_aborted: the handler in the waiter's cancellation slot,
  // as Asio's timer installs one. Every other way the wait leaves the signal clears the slot;
  // after Cancel itself took the wait, it stays there until the waiter resumes, and acts on no
  // other wait (`op`).
  struct Cancel {
    Signal* signal;
    net::detail::wait_op* op;
    void operator()(net::cancellation_type_t type) {
      const bool cancels = !!(type & (net::cancellation_type::terminal |
                                      net::cancellation_type::partial |
                                      net::cancellation_type::total));
      if (!cancels || signal->op_ != op) return;
      net::detail::wait_op* taken = signal->take(false);
      taken->ec_ = net::error::operation_aborted;
      signal->service_->scheduler_.post_deferred_completion(taken);
    }
  };

  template <class Handler>
  void park(Handler handler) {
    // One wait at a time: a second would orphan the first, its frame and its work.
    if (op_ != nullptr) std::abort();
    auto slot = net::get_associated_cancellation_slot(handler);
    using Op = net::detail::wait_handler<Handler, Executor>;
    typename Op::ptr p = {net::detail::addressof(handler), Op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) Op(handler, executor_);
    if (notified_) {
      service_->scheduler_.post_immediate_completion(p.p, false);
    } else {
      if (slot.is_connected()) {
        slot.template emplace<Cancel>(this, p.p);
        slot_ = slot;
      }
      op_ = p.p;
      service_->scheduler_.work_started();
      next_ = service_->parked_;
      if (next_ != nullptr) next_->prev_ = this;
      service_->parked_ = this;
    }
    p.v = p.p = nullptr;
  }
  // The parked wait, off the service's list and out of its cancellation slot (unless the slot's
  // own handler is taking it: a handler may not clear itself while it runs).
  net::detail::wait_op* take(bool clear_slot = true) {
    if (prev_ != nullptr) prev_->next_ = next_;
    else service_->parked_ = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
    prev_ = next_ = nullptr;
    if (clear_slot && slot_.is_connected()) slot_.clear();
    slot_ = net::cancellation_slot();
    return std::exchange(op_, nullptr);
  }

  Executor executor_;
  SignalService* service_;
  net::detail::wait_op* op_ = nullptr;
  net::cancellation_slot slot_;  // the parked wait's, when it has one
  Signal* prev_ = nullptr;
  Signal* next_ = nullptr;
  bool notified_ = false;
};

// Each parked wait is taken off its signal before it is destroyed.
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

  // A wake-up counts only if it ended the wait: after a cancel through the slot, the timer has
  // none left, and the wait ends with operation_aborted as the parked version's does.
  void notify() {
    notified_ = true;
    if (timer_.cancel() > 0) woken_ = true;
  }
  void deadline_fired() override {
    if (timer_.cancel() > 0) woken_ = true;
  }
  bool consume() { return std::exchange(notified_, false); }
  // The timer's wait ends with operation_aborted both when a wake-up cancels it and when its
  // slot does: `woken_` tells the two apart.
  Task<void> wait() {
    if (notified_) co_return;
    woken_ = false;
    auto [ec] = co_await timer_.async_wait(use_task);
    if (ec && !woken_) throw boost::system::system_error(net::error::operation_aborted);
  }

 private:
  SteadyTimer timer_;
  bool notified_ = false;
  bool woken_ = false;
};

#endif

}  // namespace proxyd
