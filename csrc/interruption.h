// Stopping a long forward pass early (Ctrl-C). The engine runs a pass in slices (steps of
// the recurrence, rows of the input projection) of about kSliceWork multiply-adds, a few
// tens of milliseconds on one core; before a slice, once a slice's work has been done
// since it last asked (never in a short pass), it asks the caller's check, and when that
// says stop, the pass throws Interrupted, leaving its outputs incomplete. Slices do not
// change results: each continues from the state the last one left.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>

namespace elman {

// True to stop. Called on the thread that called forward, with elman's threads idle.
using StopCheck = std::function<bool()>;

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("elman: the forward pass was interrupted") {}
};

constexpr std::int64_t kSliceWork = std::int64_t(1) << 30;

// How many units (steps, rows) of `work_per_unit` multiply-adds each make a slice.
inline std::int64_t units_per_slice(std::int64_t work_per_unit) {
  return work_per_unit >= kSliceWork ? 1 : kSliceWork / (work_per_unit > 0 ? work_per_unit : 1);
}

}  // namespace elman
