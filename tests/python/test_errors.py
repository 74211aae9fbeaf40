"""Bad paths and bad arrays raise vapipe.Error with the CLI's text or a message naming what is wrong."""

import json

import numpy as np
import pytest

import vapipe
from conftest import OPENCV_DATA, cli_error, require_file


def test_a_missing_package_has_the_cli_message(cli, tmp_path):
    missing = tmp_path / "absent.vpk"
    expected = cli_error(cli, "info", missing)
    with pytest.raises(vapipe.Error) as error:
        vapipe.Model(missing)
    assert str(error.value) == expected
    assert "absent.vpk" in expected
    with pytest.raises(vapipe.Error) as error:
        vapipe.Detector(missing)
    assert str(error.value) == expected


def test_a_missing_image_has_the_cli_message(cli, yolov5n, tmp_path):
    missing = tmp_path / "absent.jpg"
    with pytest.raises(vapipe.Error) as error:
        vapipe.imread(missing)
    assert "absent.jpg" in str(error.value)
    assert isinstance(error.value, RuntimeError)
    with pytest.raises(vapipe.Error, match="absent.jpg"):
        vapipe.Detector(yolov5n, threads=1).detect(missing)


def test_a_bad_config_has_the_cli_message(cli, tmp_path):
    config = tmp_path / "cameras.json"
    config.write_text(json.dumps({"cards": [], "models": []}))
    expected = cli_error(cli, "run", "--config", config)
    with pytest.raises(vapipe.Error) as error:
        vapipe.Pipeline(config)
    assert str(error.value) == expected
    missing = tmp_path / "absent.json"
    expected = cli_error(cli, "run", "--config", missing)
    with pytest.raises(vapipe.Error) as error:
        vapipe.Pipeline(missing)
    assert str(error.value) == expected


@pytest.fixture(scope="module")
def context(yolov5n):
    return vapipe.Context(vapipe.Model(yolov5n).network(), threads=1)


def test_bad_arrays_raise_clear_errors(context):
    good = np.zeros((1, 3, 640, 640), dtype=np.float32)
    with pytest.raises(vapipe.Error, match=r"must be float32, got float64 \(convert with"):
        context.run(good.astype(np.float64))
    with pytest.raises(vapipe.Error, match=r"has shape 1x3x320x320, expected -1x3x640x640 \(N from 1 to 2"):
        context.run(np.zeros((1, 3, 320, 320), dtype=np.float32))
    with pytest.raises(vapipe.Error, match=r"batch 3 \(its first dimension\), expected 1 to 2"):
        context.run(np.zeros((3, 3, 640, 640), dtype=np.float32))
    with pytest.raises(vapipe.Error, match="must be C-contiguous"):
        context.run(np.zeros((1, 3, 640, 1280), dtype=np.float32)[:, :, :, ::2])
    with pytest.raises(vapipe.Error, match="must be C-contiguous"):
        context.run(np.asfortranarray(good))
    with pytest.raises(vapipe.Error, match="must be a numpy array, got list"):
        context.run([[0.0] * 4])
    with pytest.raises(vapipe.Error, match="needs its inputs, none given"):
        context.run([])
    with pytest.raises(vapipe.Error, match=r"takes 1 input\(s\), 2 given"):
        context.run([good, good])
    # The context still works after each refusal.
    assert len(context.run(good)) == len(context.network.outputs(1))


def test_bad_images_raise_clear_errors(yolov5n):
    detector = vapipe.Detector(yolov5n, threads=1)
    with pytest.raises(vapipe.Error, match="must be uint8 BGR pixels, got float32"):
        detector.detect(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(vapipe.Error, match=r"has shape 10x10, expected \(H, W, 3\) BGR"):
        detector.detect(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(vapipe.Error, match="contiguous within rows"):
        detector.detect(np.zeros((10, 20, 3), dtype=np.uint8)[:, ::2])
    with pytest.raises(vapipe.Error, match="must be a numpy array .* or a path, got int"):
        detector.detect(3)
    with pytest.raises(vapipe.Error, match="conf 1.5 must be between 0 and 1"):
        vapipe.Detector(yolov5n, conf=1.5)
