"""vapipe.Model / Network / Context against the C++ runtime alone (tests/python/run_reference.cpp)."""

import gc
import subprocess

import numpy as np
import pytest

import vapipe


def reference_outputs(run_reference, package, x, tmp_path):
    """The C++ runtime's outputs for input x (one thread, outputs kept in the context)."""
    x.tofile(tmp_path / "input.raw")
    subprocess.run([run_reference, str(package), str(tmp_path / "input.raw"), str(x.shape[0]),
                    str(tmp_path / "output")], check=True, timeout=120)
    return [np.fromfile(tmp_path / f"output.{i}.raw", dtype=np.float32) for i in range(len(list(tmp_path.glob("output.*.raw"))))]


@pytest.mark.parametrize("batch", [1, 2])
def test_context_run_equals_the_cpp_runtime_bit_for_bit(yolov5n, run_reference, tmp_path, batch):
    net = vapipe.Model(yolov5n).network()
    assert net.stage_batches == [1, 2]
    ctx = vapipe.Context(net, threads=1)  # as run_reference: oneDNN's results may depend on the team size
    shape = net.inputs(batch)[0]["shape"]
    x = np.random.default_rng(batch).random(shape, dtype=np.float32)
    outs = ctx.run(x)
    expected = reference_outputs(run_reference, yolov5n, x, tmp_path)
    assert len(outs) == len(expected) == len(net.outputs(batch))
    for out, info, ref in zip(outs, net.outputs(batch), expected):
        assert out.dtype == np.float32 and out.shape == tuple(info["shape"])
        # Bit for bit: compared as integers, so that even NaNs (and -0 against +0) must match.
        assert np.array_equal(out.reshape(-1).view(np.uint32), ref.view(np.uint32))


def test_outputs_own_their_memory(yolov5n):
    model = vapipe.Model(yolov5n)
    ctx = vapipe.Context(model.network(), threads=1)
    x = np.zeros(tuple(model.network().inputs(1)[0]["shape"]), dtype=np.float32)
    first = ctx.run(x)
    kept = [o.copy() for o in first]
    # Another run writes new arrays; the first ones stay as they were, also once the context is gone.
    second = ctx.run(np.ones_like(x))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    del ctx, model, second
    gc.collect()
    for out, copy in zip(first, kept):
        assert out.flags.owndata or out.base is not None
        assert np.array_equal(out, copy)


def test_partial_batch_runs_padded_and_returns_its_rows(yolov5n):
    net = vapipe.Model(yolov5n).network()
    ctx = vapipe.Context(net, threads=1)
    single = np.random.default_rng(7).random(tuple(net.inputs(1)[0]["shape"]), dtype=np.float32)
    # A network with stages 1 and 2: batch 1 runs stage 1; the same sample is the first row of a batch of 2.
    pair = np.concatenate([single, np.zeros_like(single)])
    one = ctx.run(single)
    two = ctx.run(pair)
    for a, b in zip(one, two):
        assert a.shape[0] == 1 and b.shape[0] == 2
        np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-4)


def test_network_describes_itself(yolov5n):
    model = vapipe.Model(yolov5n)
    assert model.network_names == ["yolov5n"]
    net = model.network("yolov5n")
    assert net.name == "yolov5n" and net.precision == "f32" and net.max_batch == 2
    assert net.inputs()[0]["shape"] == (2, 3, 640, 640)
    assert net.metadata["model_type"] == "yolov5"
