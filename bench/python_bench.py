#!/usr/bin/env python3
"""Per-call overhead of vapipe.Context.run over the C++ runtime's run, at batch 1 (docs/performance.md).

    PYTHONPATH=build/python python3 bench/python_bench.py --reference build/python/python_run_reference

Both sides run the same package on the same input with one oneDNN thread: the C++ side is
tests/python/run_reference.cpp (ExecutionContext::run in a loop, outputs kept in the context), the Python side
Context.run (input checks, new output arrays, the GIL released). The difference of their mean times per run is
the module's overhead. It is measured on a tiny network (a 3x3 convolution on 3x32x32, exported from PyTorch),
where the run itself costs microseconds and the overhead is not lost in its noise, and on the models given
with --onnx.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

import vapipe


def python_ms(context, x, runs):
    context.run(x)  # warm-up, as the C++ side
    best = float("inf")
    for _ in range(3):  # the best of three rounds: the machine's other load only adds
        started = time.perf_counter()
        for _ in range(runs):
            context.run(x)
        best = min(best, (time.perf_counter() - started) * 1e3 / runs)
    return best


def cpp_ms(reference, package, x, runs, folder):
    raw = pathlib.Path(folder) / "input.raw"
    x.tofile(raw)
    return min(float(subprocess.run([reference, str(package), str(raw), "1", "--time", str(runs)], check=True,
                                    capture_output=True, text=True).stdout) for _ in range(3))


def measure(reference, package, runs, folder):
    net = vapipe.Model(package).network()
    x = np.random.default_rng(0).random(tuple(net.inputs(1)[0]["shape"]), dtype=np.float32)
    context = vapipe.Context(net, threads=1)
    cpp = cpp_ms(reference, package, x, runs, folder)
    py = python_ms(context, x, runs)
    print(f"{net.name:>16}  input {'x'.join(map(str, x.shape))}: C++ {cpp:.4f} ms, Python {py:.4f} ms, "
          f"overhead {py - cpp:+.4f} ms per call", flush=True)
    return py - cpp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="the python_run_reference binary of the build")
    parser.add_argument("--onnx", action="append", default=[], help="also measure this model (batch 1)")
    parser.add_argument("--runs", type=int, default=2000, help="runs per round on the tiny network")
    args = parser.parse_args()
    print(vapipe.version_line())
    with tempfile.TemporaryDirectory(prefix="vapipe-bench-") as folder:
        import torch

        tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        package = vapipe.compile(tiny, os.path.join(folder, "tiny.vpk"), name="tiny",
                                 example_input=torch.zeros(1, 3, 32, 32))
        overhead = measure(args.reference, package, args.runs, folder)
        for onnx in args.onnx:
            package = vapipe.compile(onnx, os.path.join(folder, pathlib.Path(onnx).stem + ".vpk"))
            measure(args.reference, package, max(20, args.runs // 200), folder)
    if overhead >= 0.2:
        sys.exit(f"overhead {overhead:.4f} ms per call: over the 0.2 ms budget")


if __name__ == "__main__":
    main()
