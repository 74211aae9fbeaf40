# Type stubs of the vapipe module (python/vapipe/__init__.py and the _vapipe extension), for editors and
# type checkers. docs/python.md describes the behaviour.
import os
from types import TracebackType
from typing import Any, Callable, Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

__version__: str
TORCH_ONNX_OPSET: int

class Error(RuntimeError):
    """Every vapipe failure; the text is the CLI's `vapipe: error: ...` line without the prefix."""

def version_line() -> str:
    """`vapipe --version`'s line: version, git revision, the ISA oneDNN dispatches to."""

def git_revision() -> str: ...
def cpu_isa() -> str: ...
def set_log_level(level: Literal["trace", "debug", "info", "warning", "error", "off"]) -> None: ...

_Path = str | os.PathLike[str]

def compile(
    model: _Path | Any,
    out: _Path,
    *,
    batch: int | Sequence[int] = ...,
    precision: Literal["f32", "int8", "bf16", "auto"] | None = ...,
    calib_images: _Path | None = ...,
    name: str | None = ...,
    shape: Literal["static", "dynamic"] = ...,
    input_size: tuple[int, int] | None = ...,
    model_type: str = ...,
    full_graph: bool = ...,
    calib_count: int = ...,
    calib_method: Literal["kl", "max", "percentile"] = ...,
    percentile: float = ...,
    keep_float: Sequence[str] = ...,
    int8_head: bool = ...,
    int8_tolerance: float = ...,
    calib_table: _Path | None = ...,
    threads: int = ...,
    example_input: Any | None = ...,
) -> str:
    """Compiles an ONNX file or a torch.nn.Module (with example_input) into a .vpk package."""

class Network:
    @property
    def name(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def dynamic_shape(self) -> bool: ...
    @property
    def stage_batches(self) -> list[int]: ...
    @property
    def max_batch(self) -> int: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    def inputs(self, batch: int | None = None) -> list[dict[str, Any]]: ...
    def outputs(self, batch: int | None = None) -> list[dict[str, Any]]: ...

class Model:
    def __init__(self, path: _Path) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def network_names(self) -> list[str]: ...
    def network(self, name: str | None = None) -> Network: ...

class Context:
    def __init__(self, network: Network, threads: int = 0) -> None: ...
    @property
    def network(self) -> Network: ...
    def run(
        self, inputs: npt.NDArray[np.float32] | Sequence[npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]:
        """Runs one batch: C-contiguous float32 inputs [N, ...] read in place; new output arrays."""

class Detection:
    @property
    def box(self) -> tuple[float, float, float, float]: ...
    @property
    def score(self) -> float: ...
    @property
    def class_id(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def track_id(self) -> int: ...
    @property
    def keypoints(self) -> npt.NDArray[np.float32] | None: ...
    @property
    def embedding(self) -> npt.NDArray[np.float32] | None: ...
    @property
    def identity(self) -> dict[str, Any] | None: ...
    @property
    def attribute(self) -> tuple[str, float] | None: ...
    @property
    def mask(self) -> tuple[tuple[int, int], npt.NDArray[np.uint8]] | None: ...
    def to_json(self) -> str: ...

_Image = npt.NDArray[np.uint8] | _Path

class Detector:
    def __init__(
        self,
        path: _Path,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int = 300,
        threads: int = 0,
        network: str | None = None,
        secondary: _Path | None = None,
        gallery: _Path | None = None,
        recognition_threshold: float | None = None,
    ) -> None: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def network_name(self) -> str: ...
    @overload
    def detect(self, image: _Image) -> list[Detection]: ...
    @overload
    def detect(self, image: list[_Image]) -> list[list[Detection]]: ...

class Result:
    channel: int
    frame: int
    pts: int
    pts_seconds: float
    width: int
    height: int
    inferred: bool
    detections: list[Detection]
    image: npt.NDArray[np.uint8] | None
    json: str

class Pipeline:
    def __init__(
        self,
        config: _Path | dict[str, Any],
        *,
        cache_dir: _Path | None = None,
        threads: int = 0,
        duration: float | None = None,
        stats: bool = False,
    ) -> None: ...
    def on_result(
        self, callback: Callable[[Result], Any], *, frames: bool = False, queue_size: int = 64
    ) -> None: ...
    def start(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def stop(self) -> None: ...
    def add_channel(
        self, address: str, model: str, *, loop: bool = True, pace: bool = True, rtsp_transport: str = "tcp"
    ) -> int: ...
    def remove_channel(self, channel: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def channel_count(self) -> int: ...
    def __enter__(self) -> Pipeline: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

def imread(path: _Path) -> npt.NDArray[np.uint8]:
    """An image file as `vapipe detect` reads it: uint8 BGR (H, W, 3)."""
