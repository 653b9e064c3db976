// Counts over a span and their quantiles: see window_counts.hpp.
#include "window_counts.hpp"

#include <algorithm>
#include <utility>

namespace proxyd {

WindowCounts minus(const WindowCounts& now, const WindowCounts& then) {
  WindowCounts out;
  out.requests = now.requests - then.requests;
  out.errors = now.errors - then.errors;
  for (std::size_t i = 0; i < out.buckets.size(); ++i) out.buckets[i] = now.buckets[i] - then.buckets[i];
  return out;
}

WindowCounts plus(const WindowCounts& a, const WindowCounts& b) {
  WindowCounts out;
  out.requests = a.requests + b.requests;
  out.errors = a.errors + b.errors;
  for (std::size_t i = 0; i < out.buckets.size(); ++i) out.buckets[i] = a.buckets[i] + b.buckets[i];
  return out;
}

SlotCounts slot_counts(std::string pool, const WindowCounts& counts) {
  return {std::move(pool), counts.requests, counts.errors,
          std::vector<std::int64_t>(counts.buckets.begin(), counts.buckets.end())};
}

std::optional<WindowCounts> window_counts(const SlotCounts& counts) {
  WindowCounts out;
  if (counts.buckets.size() != out.buckets.size()) return std::nullopt;
  out.requests = counts.requests;
  out.errors = counts.errors;
  std::copy(counts.buckets.begin(), counts.buckets.end(), out.buckets.begin());
  return out;
}

std::optional<Quantile> quantile(const WindowCounts& counts, double q) {
  std::int64_t total = 0;
  for (const std::int64_t n : counts.buckets) total += n;
  if (total <= 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  std::int64_t below = 0;  // requests in the buckets before this one
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
    const std::int64_t in_bucket = counts.buckets[i];
    if (in_bucket > 0 && static_cast<double>(below + in_bucket) >= rank) {
      const double lower = i == 0 ? 0.0 : kDurationBuckets[i - 1];
      const double upper = kDurationBuckets[i];
      const double seconds = lower + (upper - lower) * (rank - static_cast<double>(below)) /
                                         static_cast<double>(in_bucket);
      return Quantile{seconds * 1000.0, false};
    }
    below += in_bucket;
  }
  return Quantile{kDurationBuckets.back() * 1000.0, true};
}

}  // namespace proxyd
