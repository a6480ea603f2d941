"""torch.nn.RNN on the GPU (cuDNN), timed like lab.cu: median of CUDA-event timings of a
whole forward pass, float32, tanh, zero initial state."""

import sys

import torch

CONFIGS = [(1000, 1, 256, 256), (500, 1, 512, 512), (250, 1, 1024, 1024), (100, 16, 1760, 1760),
           (150, 4, 256, 256), (100, 64, 256, 256), (50, 64, 1760, 1760), (25, 256, 512, 512)]


def median_ms(run, repeats=11):
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[repeats // 2]


def main():
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    for T, B, I, H in CONFIGS:
        rnn = torch.nn.RNN(I, H).cuda().eval()
        x = torch.rand(T, B, I, device="cuda") * 2 - 1
        with torch.no_grad():
            ms = median_ms(lambda: rnn(x))
        print(f"{T},{B},{I},{H:<14} {'torch-cudnn':<11} {ms:10.3f} {ms * 1e3 / T:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
