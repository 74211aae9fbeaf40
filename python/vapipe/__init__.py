"""vapipe: compile detection models and run them on images and video streams, at C++ speed.

    import vapipe
    vapipe.compile("yolov5n.onnx", "yolov5n.vpk", batch=[1, 4])
    detector = vapipe.Detector("yolov5n.vpk")
    for d in detector.detect(cv2.imread("photo.jpg")):
        print(d.label, d.score, d.box)

See docs/python.md for the runtime (Model, Network, Context) and the video pipeline (Pipeline).
"""

import os
import tempfile
import weakref

from ._vapipe import (
    Context,
    imread,
    Detection,
    Detector,
    Error,
    Model,
    Network,
    Result,
    cpu_isa,
    git_revision,
    set_log_level,
    version_line,
)
from . import _vapipe

__all__ = [
    "Context",
    "Detection",
    "Detector",
    "Error",
    "Model",
    "Network",
    "Pipeline",
    "Result",
    "compile",
    "cpu_isa",
    "imread",
    "git_revision",
    "set_log_level",
    "version_line",
]

# PEP 440: the project's version, with the git revision as the local part ("0.1.0+3f2a9c1d0b7e").
__version__ = _vapipe.version() + (
    "" if git_revision() == "unknown" else "+" + git_revision().replace("-", ".")
)

# The ONNX opset PyTorch modules are exported with: the newest the compiler's importer is tested against
# (tests/ops runs the ONNX backend suite) that Debian's python3-torch 1.13 writes.
TORCH_ONNX_OPSET = 13


def compile(model, out, *, batch=(1,), precision=None, calib_images=None, name=None, shape="static",
            input_size=None, model_type="auto", full_graph=False, calib_count=0, calib_method="kl",
            percentile=99.99, keep_float=(), int8_head=False, int8_tolerance=0.0, calib_table=None,
            threads=0, example_input=None):
    """Compiles an ONNX file (a path) or a torch.nn.Module into a .vpk package at `out`.

    The options are `vapipe compile`'s (docs/compiler.md), by the same names. A torch.nn.Module is exported
    with torch.onnx at opset TORCH_ONNX_OPSET from `example_input` (a tensor, or a tuple of tensors, shaped
    like one batch), then compiled as an ONNX file would be. Returns `out`.
    """
    out = _path(out, "out")
    options = dict(batch=[int(b) for b in ([batch] if isinstance(batch, int) else batch)],
                   precision=precision or "", calib_images=None if calib_images is None else _path(calib_images, "calib_images"),
                   shape=shape, input_size=input_size, model_type=model_type, full_graph=full_graph,
                   calib_count=calib_count, calib_method=calib_method, percentile=percentile,
                   keep_float=list(keep_float), int8_head=int8_head, int8_tolerance=int8_tolerance,
                   calib_table=None if calib_table is None else _path(calib_table, "calib_table"),
                   threads=threads)
    if isinstance(model, (str, os.PathLike)):
        if example_input is not None:
            raise Error("vapipe.compile: example_input is for a torch.nn.Module; an ONNX file has its shapes")
        _vapipe._compile_onnx(os.fspath(model), out, name=name or "", **options)
        return out
    try:
        import torch
    except ImportError:
        raise Error(f"vapipe.compile: {type(model).__name__} is not a path; to compile a torch.nn.Module "
                    "install PyTorch (apt-get install python3-torch)") from None
    if not isinstance(model, torch.nn.Module):
        raise Error(f"vapipe.compile: model must be an ONNX file path or a torch.nn.Module, "
                    f"got {type(model).__name__}")
    if example_input is None:
        raise Error("vapipe.compile: a torch.nn.Module needs example_input (a tensor shaped like its input, "
                    "e.g. torch.zeros(1, 3, 640, 640))")
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    input_names = [f"input{i}" if len(inputs) > 1 else "input" for i in range(len(inputs))]
    with tempfile.TemporaryDirectory(prefix="vapipe-torch-") as folder:
        onnx_path = os.path.join(folder, (name or type(model).__name__) + ".onnx")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                torch.onnx.export(model, inputs, onnx_path, opset_version=TORCH_ONNX_OPSET,
                                  input_names=input_names, do_constant_folding=True,
                                  dynamic_axes={n: {0: "batch"} for n in input_names})
        except Exception as error:
            raise Error(f"vapipe.compile: torch.onnx.export of {type(model).__name__} failed "
                        f"(opset {TORCH_ONNX_OPSET}): {error}") from error
        finally:
            model.train(was_training)
        _vapipe._compile_onnx(onnx_path, out, name=name or type(model).__name__, **options)
    return out


def _path(value, what):
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise Error(f"vapipe.compile: {what} must be a path, got {type(value).__name__}")


_live_pipelines = weakref.WeakSet()


class Pipeline(_vapipe.Pipeline):
    __doc__ = _vapipe.Pipeline.__doc__

    def __init__(self, config, **options):
        if not isinstance(config, (dict, str, os.PathLike)):
            raise Error(f"Pipeline: config must be a path or a dict, got {type(config).__name__}")
        super().__init__(config, **options)
        _live_pipelines.add(self)


def _stop_pipelines():
    # At exit, before the interpreter goes: the callback threads still need it to drain.
    for pipeline in list(_live_pipelines):
        try:
            pipeline.stop()
        except Error:
            pass


import atexit  # noqa: E402

atexit.register(_stop_pipelines)
