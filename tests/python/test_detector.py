"""vapipe.Detector against `vapipe detect --json` on the same package and photo."""

import json

import numpy as np
import pytest

import vapipe
from conftest import OPENCV_DATA, require_file, run_cli


def cli_detections(cli, package, image, *options):
    line = run_cli(cli, "detect", package, image, "--json", "--threads", "1", *options).stdout.splitlines()
    assert len(line) == 1
    return json.loads(line[0])["detections"]


def test_detect_equals_the_cli_json(cli, yolov5n):
    photo = require_file(OPENCV_DATA / "messi5.jpg")
    expected = cli_detections(cli, yolov5n, photo)
    assert any(d["label"] == "person" for d in expected)
    detector = vapipe.Detector(yolov5n, threads=1)
    for image in (photo, str(photo), vapipe.imread(photo)):
        found = detector.detect(image)
        assert [json.loads(d.to_json()) for d in found] == expected
    # The attributes carry the same float32 values the JSON was written from.
    for d, e in zip(found, expected):
        assert (d.label, d.class_id, d.track_id) == (e["label"], e["class_id"], e["track_id"])
        assert np.float32(d.score) == np.float32(e["score"])
        assert np.array_equal(np.float32(d.box), np.float32(e["box"]))
        assert d.keypoints is None and d.mask is None and d.embedding is None and d.identity is None


def test_thresholds_are_the_cli_options(cli, yolov5n):
    photo = require_file(OPENCV_DATA / "messi5.jpg")
    expected = cli_detections(cli, yolov5n, photo, "--conf", "0.6", "--iou", "0.3")
    found = vapipe.Detector(yolov5n, conf=0.6, iou=0.3, threads=1).detect(photo)
    assert [json.loads(d.to_json()) for d in found] == expected
    assert all(d.score > 0.6 for d in found)


def test_a_list_of_images_gives_a_list_per_image(yolov5n):
    photo = require_file(OPENCV_DATA / "messi5.jpg")
    other = require_file(OPENCV_DATA / "basketball1.png")
    detector = vapipe.Detector(yolov5n, threads=1)
    # Three images on a network of batch 2: two runs.
    results = detector.detect([photo, other, vapipe.imread(photo)])
    assert len(results) == 3
    single = [json.loads(d.to_json()) for d in detector.detect(photo)]
    assert [json.loads(d.to_json()) for d in results[2]] == single
    assert [json.loads(d.to_json()) for d in results[1]] == [
        json.loads(d.to_json()) for d in detector.detect(other)]


def test_a_crop_is_read_in_place(yolov5n):
    photo = vapipe.imread(require_file(OPENCV_DATA / "messi5.jpg"))
    crop = photo[50:300, 100:500]  # strided rows, contiguous pixels
    assert not crop.flags.c_contiguous
    detector = vapipe.Detector(yolov5n, threads=1)
    assert [d.to_json() for d in detector.detect(crop)] == [
        d.to_json() for d in detector.detect(np.ascontiguousarray(crop))]
