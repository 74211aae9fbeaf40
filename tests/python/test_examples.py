"""The examples of examples/python run end to end as a user runs them (a subprocess each, real photos, video and
models), and print what their docstrings promise."""

import re
import shutil
import subprocess
import sys

import pytest

from conftest import OPENCV_DATA, SOURCE_DIR, models_dir, require_file, require_model, run_cli, vtest_clip

EXAMPLES = SOURCE_DIR / "examples" / "python"


def run_example(name, *args, timeout=180):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{name} failed ({result.returncode}): {result.stderr}"
    return result.stdout.splitlines()


def test_detect_image_prints_the_players_of_messi5(yolov5n):
    photo = require_file(OPENCV_DATA / "messi5.jpg")
    lines = run_example("detect_image.py", yolov5n, photo)
    pattern = re.compile(r"^(.+): (\w[\w ]*) (\d\.\d{3}) \[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]$")
    parsed = [pattern.match(line) for line in lines]
    assert lines and all(parsed), lines
    people = [m for m in parsed if m.group(2) == "person" and float(m.group(3)) > 0.5]
    assert len(people) >= 2, lines
    assert all(m.group(1) == str(photo) for m in parsed)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """100 frames of vtest.avi: played at its frame rate, 10 s, so the once-a-second report prints."""
    return vtest_clip(tmp_path_factory, 100)


def test_camera_counts_reports_the_people_of_a_video_once_a_second(yolov5n, long_clip):
    lines = run_example("camera_counts.py", long_clip, yolov5n)
    pattern = re.compile(r"^\d\d:\d\d:\d\d frame (\d+): (.+)$")
    parsed = [pattern.match(line) for line in lines]
    assert lines and all(parsed), lines
    frames = [int(m.group(1)) for m in parsed]
    assert frames == sorted(frames) and frames[-1] <= 100, lines
    # vtest.avi is a street of walking people from its first frame on.
    assert any(re.search(r"\bperson: [1-9]\d*", m.group(2)) for m in parsed), lines


@pytest.fixture(scope="module")
def face_package(cli, tmp_path_factory):
    scrfd = require_model("scrfd_500m_bnkps.onnx")
    mobilefacenet = require_model("mobilefacenet.onnx")
    out = tmp_path_factory.mktemp("face")
    run_cli(cli, "compile", scrfd, "-o", out / "scrfd.vpk")
    run_cli(cli, "compile", mobilefacenet, "-o", out / "mobilefacenet.vpk")
    run_cli(cli, "combine", out / "scrfd.vpk", out / "mobilefacenet.vpk", "-o", out / "face.vpk")
    return out / "face.vpk"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Three people of ../shared/data/faces under names of their own; alice and bob walk through its video."""
    faces = models_dir() / ".." / "data" / "faces"
    if not (faces / "video_chunk_6s.mp4").exists():
        pytest.skip(f"the face gallery and video are not in {faces} (../shared/data/faces)")
    folder = tmp_path_factory.mktemp("gallery")
    for source, name in (("0001.jpg", "alice.jpg"), ("0025.jpg", "bob.jpg"), ("0003.jpg", "carol.jpg")):
        shutil.copy(faces / source, folder / name)
    return folder


def test_face_gallery_names_each_gallery_photo_after_itself(face_package, gallery):
    lines = run_example("face_gallery.py", face_package, gallery)
    assert len(lines) == 3, lines
    for line in lines:
        photo, names = line.split(": ", 1)
        person = photo.rsplit("/", 1)[-1].split(".")[0]
        assert names.startswith(f"[('{person}', "), line


def test_face_gallery_says_who_arrives_in_a_video(face_package, gallery):
    video = models_dir() / ".." / "data" / "faces" / "video_chunk_6s.mp4"
    lines = run_example("face_gallery.py", face_package, gallery, video)
    arrivals = {m.group(1) for m in (re.match(r"^\s*\d+\.\d\d s  (\w+) arrives$", line) for line in lines) if m}
    assert arrivals == {"alice", "bob"}, lines
