// Conversions between float and the storage types (on the device, and to and from the
// host), and the (T, B) <-> (B, T) swap of batch_first arrays, on the device.
#include <algorithm>

#include "cuda/check.h"
#include "cuda/cuda.h"
#include "cuda/storage.cuh"

namespace elman::cuda {
namespace {

template <typename In, typename Out>
__global__ void convert(const In* in, Out* out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = from_float<Out>(to_float(in[i]));
}

// out (d1, d0, inner) = in (d0, d1, inner) with the first two axes swapped; E: a type of
// the element's size.
template <typename E>
__global__ void swap_leading(const E* in, E* out, size_t d0, size_t d1, size_t inner) {
  const size_t n = d0 * d1 * inner;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t c = i % inner, row = i / inner, a = row / d1, j = row % d1;
    out[(j * d0 + a) * inner + c] = in[i];
  }
}

unsigned blocks_for(size_t n) { return (unsigned)std::min<size_t>((n + 255) / 256, 65535); }

template <typename In, typename Out>
void launch_convert(const void* in, void* out, size_t n, Stream stream) {
  if (n == 0) return;
  convert<<<blocks_for(n), 256, 0, stream>>>(static_cast<const In*>(in), static_cast<Out*>(out), n);
  check(cudaGetLastError(), "conversion kernel launch");
}

}  // namespace

std::size_t storage_bytes(Storage s) { return s == Storage::F32 ? 4 : 2; }

void to_storage(const float* in, void* out, std::size_t n, Storage s, Stream stream) {
  switch (s) {
    case Storage::F32:
      check(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, stream), "copy");
      break;
    case Storage::F16: launch_convert<float, __half>(in, out, n, stream); break;
    case Storage::BF16: launch_convert<float, __nv_bfloat16>(in, out, n, stream); break;
  }
}

void from_storage(const void* in, float* out, std::size_t n, Storage s, Stream stream) {
  switch (s) {
    case Storage::F32:
      check(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, stream), "copy");
      break;
    case Storage::F16: launch_convert<__half, float>(in, out, n, stream); break;
    case Storage::BF16: launch_convert<__nv_bfloat16, float>(in, out, n, stream); break;
  }
}

std::unique_ptr<Buffer> upload(const float* host, std::size_t n, Storage s) {
  auto out = std::make_unique<Buffer>(n * storage_bytes(s));
  if (s == Storage::F32) {
    copy_to_device(out->data(), host, n * sizeof(float));
    return out;
  }
  Buffer staged(n * sizeof(float));
  copy_to_device(staged.data(), host, n * sizeof(float));
  to_storage(static_cast<const float*>(staged.data()), out->data(), n, s, nullptr);
  check(cudaStreamSynchronize(nullptr), "values to the device");
  return out;
}

void download(const void* device, float* host, std::size_t n, Storage s) {
  if (s == Storage::F32) return copy_to_host(host, device, n * sizeof(float));
  Buffer widened(n * sizeof(float));
  from_storage(device, static_cast<float*>(widened.data()), n, s, nullptr);
  copy_to_host(host, widened.data(), n * sizeof(float));
}

void swap_leading_axes(const void* in, void* out, std::int64_t d0, std::int64_t d1,
                       std::int64_t inner, std::size_t element_bytes, Stream stream) {
  const size_t n = (size_t)d0 * d1 * inner;
  if (n == 0) return;
  if (element_bytes == 4)
    swap_leading<<<blocks_for(n), 256, 0, stream>>>(static_cast<const float*>(in), static_cast<float*>(out), d0, d1, inner);
  else
    swap_leading<<<blocks_for(n), 256, 0, stream>>>(static_cast<const __half*>(in), static_cast<__half*>(out), d0, d1, inner);
  check(cudaGetLastError(), "axis swap kernel launch");
}

}  // namespace elman::cuda
