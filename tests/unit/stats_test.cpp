// proxyctl stats' windows: per-second slots counted as a worker counts them, merged over
// (now - window, now] exactly, and latency quantiles interpolated inside histogram buckets as
// Prometheus' histogram_quantile does.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/stats.hpp"

namespace proxyd {
namespace {

std::unique_ptr<RequestSeries> make_series(std::string route, SlotName slot, std::string pool) {
  auto series = std::make_unique<RequestSeries>();
  series->route = std::move(route);
  series->slot = slot;
  series->pool = std::move(pool);
  return series;
}

// `n` requests at `second`, in duration bucket `bucket`, `errors` of them errors.
void count(RequestSeries& series, std::int64_t second, int n, std::size_t bucket = 0,
           int errors = 0) {
  for (int i = 0; i < n; ++i) count_second(series, second, i < errors, bucket);
}

WindowCounts window_of(const RequestSeries& series, std::int64_t now, std::int64_t window) {
  WindowCounts out;
  add_window(series, now, window, out);
  return out;
}

TEST(StatsWindow, SumsTheSecondsInsideTheWindowOnly) {
  auto series = make_series("api", SlotName::live, "blue");
  count(*series, 90, 1000);        // now - 10: just outside a 10 s window
  count(*series, 91, 3, 0, 1);     // the oldest second inside
  count(*series, 95, 5, 2, 2);
  count(*series, 100, 7, 13, 0);   // now
  count(*series, 101, 100);        // after now: a worker whose clock moved on
  const WindowCounts ten = window_of(*series, 100, 10);
  EXPECT_EQ(ten.requests, 15);
  EXPECT_EQ(ten.errors, 3);
  EXPECT_EQ(ten.buckets[0], 3);
  EXPECT_EQ(ten.buckets[2], 5);
  EXPECT_EQ(ten.buckets[13], 7);
  const WindowCounts minute = window_of(*series, 100, 60);
  EXPECT_EQ(minute.requests, 1015);
  EXPECT_EQ(window_of(*series, 101, 10).requests, 112);  // 91 is out, 101 is in
  EXPECT_EQ(window_of(*series, 500, 300).requests, 0);   // all long gone
}

TEST(StatsWindow, ASlotReusedByALaterSecondForgetsTheEarlierOne) {
  auto series = make_series("api", SlotName::live, "blue");
  count(*series, 10, 4, 1, 4);
  count(*series, 10 + kWindowSeconds, 2, 3, 0);  // the same slot, 5 minutes later
  const WindowCounts now = window_of(*series, 10 + kWindowSeconds, kWindowSeconds);
  EXPECT_EQ(now.requests, 2);
  EXPECT_EQ(now.errors, 0);
  EXPECT_EQ(now.buckets[1], 0);
  EXPECT_EQ(now.buckets[3], 2);
  // Asked as of second 10 (a reader behind the writer), the slot no longer holds 10.
  EXPECT_EQ(window_of(*series, 10, 10).requests, 0);
}

// A reader beside the writer (the control thread beside a worker): a finished second is read whole
// or, once the writer has gone round the ring and reuses its slot, not at all; never half reset.
TEST(StatsWindow, AReaderBesideTheWriterSeesASecondWholeOrNotAtAll) {
  auto series = make_series("api", SlotName::live, "blue");
  constexpr std::int64_t kSeconds = 200'000;  // round the ring hundreds of times
  const auto requests_in = [](std::int64_t second) { return second % 5 + 1; };
  std::atomic<std::int64_t> done{-1};  // the last second the writer finished
  std::thread writer([&] {
    for (std::int64_t second = 0; second < kSeconds; ++second) {
      const std::int64_t n = requests_in(second);
      for (std::int64_t i = 0; i < n; ++i) {
        count_second(*series, second, i % 2 == 0, static_cast<std::size_t>(second % 14));
      }
      done.store(second, std::memory_order_release);
    }
  });
  std::int64_t torn = 0;
  for (std::int64_t last = -1; last < kSeconds - 1;) {
    last = done.load(std::memory_order_acquire);
    // The oldest second the ring still holds: the writer's very next second reuses its slot.
    const std::int64_t oldest = last - (kWindowSeconds - 1);
    if (oldest < 0) continue;
    const WindowCounts seen = window_of(*series, oldest, 1);
    if (seen.requests == 0) continue;  // reused meanwhile: skipped
    const std::int64_t n = requests_in(oldest);
    if (seen.requests != n || seen.errors != (n + 1) / 2 ||
        seen.buckets[static_cast<std::size_t>(oldest % 14)] != n) {
      ++torn;
    }
  }
  writer.join();
  EXPECT_EQ(torn, 0);
  std::int64_t expected = 0;
  for (std::int64_t second = kSeconds - kWindowSeconds; second < kSeconds; ++second) {
    expected += requests_in(second);
  }
  EXPECT_EQ(window_of(*series, kSeconds - 1, kWindowSeconds).requests, expected);
}

TEST(StatsQuantile, InterpolatesInsideTheBucket) {
  WindowCounts counts;
  EXPECT_EQ(quantile(counts, 0.5), std::nullopt);
  counts.buckets[0] = 50;  // (0, 1 ms]
  counts.buckets[2] = 50;  // (2.5, 5 ms]
  const std::optional<Quantile> p50 = quantile(counts, 0.5);
  ASSERT_TRUE(p50);
  EXPECT_DOUBLE_EQ(p50->ms, 1.0);  // rank 50: the top of the first bucket
  EXPECT_FALSE(p50->over);
  const std::optional<Quantile> p99 = quantile(counts, 0.99);
  ASSERT_TRUE(p99);
  EXPECT_DOUBLE_EQ(p99->ms, 2.5 + 2.5 * 49.0 / 50.0);  // rank 99: 49 of 50 into (2.5, 5]
  EXPECT_FALSE(p99->over);

  WindowCounts one;
  one.buckets[4] = 4;  // (10, 25 ms]
  EXPECT_DOUBLE_EQ(quantile(one, 0.5)->ms, 10.0 + 15.0 * 2.0 / 4.0);
}

TEST(StatsQuantile, BeyondTheLastBucketIsItsBoundMarkedOver) {
  WindowCounts counts;
  counts.buckets[0] = 90;
  counts.buckets[kDurationBuckets.size()] = 10;  // +Inf
  EXPECT_EQ(quantile(counts, 0.5), (Quantile{0.5 / 0.9, false}));
  EXPECT_EQ(quantile(counts, 0.99), (Quantile{10'000.0, true}));
}

RoutingSnapshot two_routes() {
  RoutingSnapshot snapshot;
  snapshot.generation = 4;
  for (const char* name : {"blue", "green", "red"}) {
    Pool pool;
    pool.name = name;
    pool.index = static_cast<std::uint32_t>(snapshot.pools.size());
    snapshot.pools.push_back(pool);
  }
  Route api;
  api.name = "api";
  api.live_pool = 0;
  api.passive_pool = 1;
  api.weight_ppm = 50'000;
  Route web;
  web.name = "web";
  web.index = 1;
  snapshot.routes = {api, web};
  return snapshot;
}

TEST(StatsWindow, MergesWorkersPerRouteSlotAndPool) {
  const RoutingSnapshot snapshot = two_routes();
  // Two workers' series for api's live slot, one for its passive slot, an older passive pool
  // with requests in the window and one without.
  auto live1 = make_series("api", SlotName::live, "blue");
  auto live2 = make_series("api", SlotName::live, "blue");
  auto passive = make_series("api", SlotName::passive, "green");
  auto before = make_series("api", SlotName::passive, "red");
  auto long_ago = make_series("api", SlotName::live, "red");
  count(*live1, 1000, 30, 1);
  count(*live1, 970, 500, 1);  // outside a 10 s window
  count(*live2, 995, 27, 1, 1);
  count(*passive, 999, 3, 5, 3);
  count(*before, 992, 2, 0);
  count(*long_ago, 900, 9, 0);
  const std::vector<const RequestSeries*> series{live1.get(), passive.get(), before.get(),
                                                 long_ago.get(), live2.get()};
  const Stats stats = window_stats(snapshot, series, 1000, 10);
  EXPECT_EQ(stats.generation, 4u);
  EXPECT_EQ(stats.window_seconds, 10);
  ASSERT_EQ(stats.routes.size(), 2u);
  const RouteStats& api = stats.routes[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.weight_ppm, 50'000u);
  ASSERT_EQ(api.slots.size(), 3u);
  EXPECT_EQ(api.slots[0].slot, "live");
  EXPECT_EQ(api.slots[0].pool, "blue");
  EXPECT_EQ(api.slots[0].requests, 57);
  EXPECT_EQ(api.slots[0].errors, 1);
  // All in (1, 2.5 ms]: rank 28.5 of 57.
  EXPECT_EQ(api.slots[0].p50, (Quantile{1.0 + 1.5 * 28.5 / 57.0, false}));
  EXPECT_EQ(api.slots[1].slot, "passive");
  EXPECT_EQ(api.slots[1].pool, "green");
  EXPECT_EQ(api.slots[1].requests, 3);
  EXPECT_EQ(api.slots[1].errors, 3);
  EXPECT_EQ(api.slots[2].slot, "passive");
  EXPECT_EQ(api.slots[2].pool, "red");
  EXPECT_EQ(api.slots[2].requests, 2);
  const RouteStats& web = stats.routes[1];
  ASSERT_EQ(web.slots.size(), 2u);  // blue as live and as passive, nothing counted
  EXPECT_EQ(web.slots[0].requests, 0);
  EXPECT_EQ(web.slots[0].p50, std::nullopt);
  EXPECT_EQ(web.slots[1].slot, "passive");
  EXPECT_EQ(web.slots[1].p99, std::nullopt);
}

}  // namespace
}  // namespace proxyd
