// ThreadSanitizer check of the engine's threading (tools/tsan/run): several threads run
// Network::forward on shared networks at once while another changes the pool's thread
// count; every result must equal, bit for bit, the serial result for one of the counts.
// No Python: TSan cannot see the GIL or NumPy, and would report their accesses.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "network.h"

namespace {

constexpr int kCounts[] = {1, 2, 3};

template <typename T>
struct Case {
  std::int64_t steps, batch, input, hidden, layers, directions;
  bool variable_lengths;
  std::vector<T> weights, x;
  std::vector<std::int64_t> lengths;
  std::unique_ptr<elman::Network<T>> net;
  std::vector<std::vector<T>> expected;  // y then h_n, per thread count

  Case(std::int64_t T_, std::int64_t B, std::int64_t I, std::int64_t H, std::int64_t L,
       std::int64_t D, bool var)
      : steps(T_), batch(B), input(I), hidden(H), layers(L), directions(D), variable_lengths(var) {
    std::mt19937 rng(static_cast<unsigned>(T_ * 131 + B * 17 + H));
    std::uniform_real_distribution<double> u(-1, 1);
    const std::int64_t cells = L * D;
    std::vector<elman::CellWeights<T>> spec;
    weights.resize(cells * ((D * H) * H + H * H + H));
    for (auto& w : weights) w = static_cast<T>(u(rng) / std::sqrt(double(H)));
    std::int64_t at = 0;
    for (std::int64_t c = 0; c < cells; ++c) {
      const std::int64_t in = c < D ? I : D * H;
      const T* w_x = weights.data() + at;
      const T* w_y = w_x + in * H;
      const T* b = w_y + H * H;
      at += in * H + H * H + H;
      spec.push_back({w_x, w_y, b, c % D == 1, elman::ActivationParams{}});
    }
    net = std::make_unique<elman::Network<T>>(I, H, L, D, spec);
    x.resize(T_ * B * I);
    for (auto& v : x) v = static_cast<T>(u(rng));
    for (std::int64_t b = 0; b < B; ++b) lengths.push_back(var ? 1 + (b * 7) % T_ : T_);
  }

  std::vector<T> run() const {
    std::vector<T> out(steps * batch * directions * hidden + layers * directions * batch * hidden);
    net->forward(steps, batch, x.data(), nullptr, variable_lengths ? lengths.data() : nullptr,
                 out.data(), out.data() + steps * batch * directions * hidden);
    return out;
  }
};

}  // namespace

// A deliberate data race, to show that the check fails on one (tools/tsan/run --self-test).
int race() {
  long counter = 0;
  std::thread a([&] { for (int i = 0; i < 1000; ++i) ++counter; });
  std::thread b([&] { for (int i = 0; i < 1000; ++i) ++counter; });
  a.join();
  b.join();
  return counter > 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--self-test") return race();
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  const int callers = argc > 2 ? std::atoi(argv[2]) : 4;
  // The engine's paths: rows split, columns split with a barrier per step (W_y beyond
  // L2), variable lengths, bidirectional float64 through OpenBLAS, a single row.
  std::vector<Case<float>> f32;
  f32.emplace_back(20, 17, 16, 64, 2, 1, false);
  f32.emplace_back(6, 2, 8, 640, 1, 1, false);
  f32.emplace_back(15, 9, 12, 48, 1, 1, true);
  f32.emplace_back(30, 1, 32, 256, 1, 1, false);
  std::vector<Case<double>> f64;
  f64.emplace_back(12, 5, 10, 40, 2, 2, true);
  for (int n : kCounts) {
    elman::cpu::set_num_threads(n);
    for (auto& c : f32) c.expected.push_back(c.run());
    for (auto& c : f64) c.expected.push_back(c.run());
  }

  std::atomic<bool> stop{false};
  std::atomic<long> calls{0}, mismatches{0};
  auto check = [&](const auto& c) {
    const auto out = c.run();
    bool ok = false;
    for (const auto& e : c.expected) ok = ok || e == out;
    mismatches += !ok;
    ++calls;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i)
    threads.emplace_back([&, i] {
      for (std::size_t k = i; !stop; ++k) {
        if (k % 5 < 4) check(f32[k % f32.size()]);
        else check(f64[0]);
      }
    });
  threads.emplace_back([&] {
    for (int k = 0; !stop; ++k) {
      elman::cpu::set_num_threads(kCounts[k % 3]);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::printf("%d caller threads + 1 changing the thread count, %.0f s: %ld calls, %ld mismatches\n",
              callers, seconds, calls.load(), mismatches.load());
  return mismatches ? 1 : 0;
}
