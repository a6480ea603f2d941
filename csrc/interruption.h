// Stopping a long forward pass early (Ctrl-C). The engine runs a pass in slices (steps of
// the recurrence, rows of the input projection) of about slice_work multiply-adds, a few
// tens of milliseconds on one core; before a slice, once a slice's work has been done
// since it last asked (never in a short pass), it asks the caller's check, and when that
// says stop, the pass throws Interrupted, leaving its outputs incomplete. Slices do not
// change results: each continues from the state the last one left.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <stdexcept>

namespace elman {

// True to stop. Called on the thread that called forward, with elman's threads idle.
using StopCheck = std::function<bool()>;

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("elman: the forward pass was interrupted") {}
};

// A slice's multiply-adds: kSliceWork, or less where the tests set it (slices of a few
// steps put the paths' slice boundaries into short sequences).
constexpr std::int64_t kSliceWork = std::int64_t(1) << 30;
inline std::atomic<std::int64_t> slice_work{kSliceWork};

// How many units (steps, rows) of `work_per_unit` multiply-adds each make a slice.
inline std::int64_t units_per_slice(std::int64_t work_per_unit) {
  const std::int64_t work = slice_work.load(std::memory_order_relaxed);
  return work_per_unit >= work ? 1 : work / (work_per_unit > 0 ? work_per_unit : 1);
}

}  // namespace elman
