"""Shared fixtures of the Python module's tests: the CLI and the C++ reference runner of this build, the shared
models (../shared/models or $VAPIPE_MODELS; tests that need one skip, saying so, when it is absent), the
photos and clip of Debian's opencv-doc, and packages compiled once per session."""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

import vapipe

SOURCE_DIR = pathlib.Path(os.environ.get("VAPIPE_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
OPENCV_DATA = pathlib.Path("/usr/share/doc/opencv-doc/examples/data")


def models_dir():
    return pathlib.Path(os.environ.get("VAPIPE_MODELS") or SOURCE_DIR / ".." / "shared" / "models")


def require_model(file):
    path = models_dir() / file
    if not path.exists():
        pytest.skip(f"model {file} not found in {models_dir()} (set VAPIPE_MODELS to the folder holding "
                    "the shared COCO detectors)")
    return path


def require_file(path):
    path = pathlib.Path(path)
    if not path.exists():
        pytest.skip(f"{path} not found (apt-get install opencv-doc)")
    return path


def built_program(variable):
    """A program of the build that ctest names in the environment (python/CMakeLists.txt)."""
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"{variable} is not set (ctest sets it: ctest -R python_module_tests)")
    return path


@pytest.fixture(scope="session")
def cli():
    return built_program("VAPIPE_CLI")


@pytest.fixture(scope="session")
def run_reference():
    return built_program("VAPIPE_RUN_REFERENCE")


def run_cli(cli, *args, check=True):
    result = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"vapipe {' '.join(map(str, args))} failed: {result.stderr}")
    return result


def cli_error(cli, *args):
    """The text after "vapipe: error: " of a command that must fail."""
    result = run_cli(cli, *args, check=False)
    assert result.returncode == 1, result.stderr
    prefix = "vapipe: error: "
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(prefix), result.stderr
    return line[len(prefix):]


@pytest.fixture(scope="session")
def yolov5n(tmp_path_factory):
    """yolov5n compiled by vapipe.compile with stages of batch 1 and 2."""
    onnx = require_model("yolov5n.onnx")
    out = tmp_path_factory.mktemp("packages") / "yolov5n.vpk"
    vapipe.compile(onnx, out, batch=[1, 2])
    return out


def vtest_clip(tmp_path_factory, frames):
    """The first `frames` frames of opencv-doc's vtest.avi as H.264 in MP4 (10 frames per second)."""
    source = require_file(OPENCV_DATA / "vtest.avi")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not found (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("clips") / f"vtest{frames}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-r", "10", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    return vtest_clip(tmp_path_factory, 60)


def read_json_lines(path):
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]
