"""vapipe.compile: ONNX files as `vapipe compile` does, and torch.nn.Modules exported through torch.onnx."""

import sys

import numpy as np
import pytest

import vapipe
from conftest import cli_error


def test_a_missing_onnx_file_has_the_cli_message(cli, tmp_path):
    missing = tmp_path / "absent.onnx"
    expected = cli_error(cli, "compile", missing, "-o", tmp_path / "out.vpk")
    with pytest.raises(vapipe.Error) as error:
        vapipe.compile(missing, tmp_path / "out.vpk")
    assert str(error.value) == expected


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(vapipe.Error, match="batch value '0' is not a positive integer"):
        vapipe.compile(tmp_path / "a.onnx", tmp_path / "out.vpk", batch=[1, 0])
    with pytest.raises(vapipe.Error, match="shape 'wide' must be static or dynamic"):
        vapipe.compile(tmp_path / "a.onnx", tmp_path / "out.vpk", shape="wide")
    with pytest.raises(vapipe.Error, match="model must be an ONNX file path or a torch.nn.Module, got int"):
        vapipe.compile(3, tmp_path / "out.vpk")


def small_module(torch):
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 4, 1), torch.nn.Sigmoid())


def test_a_torch_module_compiles_and_runs_as_torch_does(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is absent (apt-get install python3-torch)")
    torch.manual_seed(0)
    module = small_module(torch)
    out = vapipe.compile(module, tmp_path / "small.vpk", batch=[1, 2], example_input=torch.zeros(1, 3, 32, 32))
    net = vapipe.Model(out).network()
    assert net.name == "Sequential" and net.stage_batches == [1, 2]
    assert net.inputs(2)[0]["shape"] == (2, 3, 32, 32)
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    (y,) = vapipe.Context(net, threads=1).run(x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    assert module.training  # left as it was given


def test_a_torch_module_needs_an_example_input(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is absent (apt-get install python3-torch)")
    with pytest.raises(vapipe.Error, match="needs example_input"):
        vapipe.compile(small_module(torch), tmp_path / "small.vpk")


def test_without_torch_the_error_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` then raises ImportError

    class NotAPath:
        pass

    with pytest.raises(vapipe.Error, match=r"install PyTorch \(apt-get install python3-torch\)"):
        vapipe.compile(NotAPath(), tmp_path / "out.vpk")
