"""vapipe.Pipeline: results per frame in order, equal to the JSON Lines output; a raising or slow callback
costs only its own results."""

import json
import threading
import time

import numpy as np
import pytest

import vapipe
from conftest import read_json_lines, require_model


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """Where the pipelines compile yolofastestv2.onnx: once for the module."""
    return tmp_path_factory.mktemp("cache")


def config(clip, channels, tmp_path, *, pace, results=None):
    model = {"name": "det", "path": str(require_model("yolofastestv2.onnx")), "obj_threshold": 0.3,
             "nms_threshold": 0.45, "class_threshold": 0.3}
    if results is not None:
        model.update({"output_mode": "results", "results_path": str(results)})
    return {"cards": [{"devid": 0, "cameras": [
        {"address": str(clip), "chan_num": channels, "model_names": ["det"], "loop": False, "pace": pace}]}],
            "models": [model]}


def test_every_frame_in_order_with_the_json_lines_detections(clip, tmp_path, model_cache):
    results = tmp_path / "results.jsonl"
    received = []
    pipeline = vapipe.Pipeline(config(clip, 1, tmp_path, pace=False, results=results),
                               cache_dir=model_cache)
    pipeline.on_result(received.append, frames=True, queue_size=64)
    with pipeline:
        assert pipeline.wait(timeout=120), "the 60 frames were not done in 120 s"
    lines = read_json_lines(results)
    assert [r.frame for r in received] == list(range(60)) == [line["frame"] for line in lines]
    detections_seen = 0
    for result, line in zip(received, lines):
        assert result.channel == 0 and result.json
        assert result.pts == line["pts"]
        assert [json_of(d) for d in result.detections] == line["detections"]
        assert result.image.shape == (576, 768, 3) and result.image.dtype == np.uint8
        detections_seen += len(result.detections)
    assert detections_seen > 60  # vtest.avi's pedestrians
    # The frames are the decoded pictures, not blank buffers.
    assert received[0].image.std() > 10
    stats = pipeline.stats()["channels"][0]
    assert (stats["output"], stats["callbacks"], stats["callback_errors"], stats["callback_drops"]) == (60, 60, 0, 0)


def json_of(detection):
    return json.loads(detection.to_json())


def test_a_raising_and_a_sleeping_callback_leave_the_other_channel_alone(clip, tmp_path, model_cache):
    # Three paced channels of the clip (10 fps, 6 s): channel 0's callback raises on every frame, channel 1's
    # sleeps 0.5 s per frame with a queue of 2; channel 2's must see its 60 frames at the source's pace.
    arrivals = {0: [], 1: [], 2: []}

    def callback(result):
        arrivals[result.channel].append((result.frame, time.monotonic()))
        if result.channel == 0:
            raise ValueError(f"test callback raised on frame {result.frame}")
        if result.channel == 1:
            time.sleep(0.5)

    pipeline = vapipe.Pipeline(config(clip, 3, tmp_path, pace=True), cache_dir=model_cache)
    pipeline.on_result(callback, queue_size=2)
    started = time.monotonic()
    pipeline.start()
    assert pipeline.wait(timeout=60)
    elapsed = time.monotonic() - started
    stats = {c["channel"]: c for c in pipeline.stats()["channels"]}
    # Every channel output all its frames: the video went on whatever the callbacks did.
    assert [stats[c]["output"] for c in range(3)] == [60, 60, 60]
    assert stats[0]["callback_errors"] == 60 and stats[0]["callbacks"] == 60
    assert stats[1]["callback_drops"] > 20 and stats[1]["callback_errors"] == 0
    assert stats[2]["callbacks"] == 60 and stats[2]["callback_drops"] == 0 and stats[2]["callback_errors"] == 0
    frames = [f for f, _ in arrivals[2]]
    assert frames == list(range(60))
    # Channel 2 ran at the clip's 10 fps: its 60 results came over about 5.9 s, not stretched by channel 1.
    span = arrivals[2][-1][1] - arrivals[2][0][1]
    assert 4.5 < span < 8.0, f"channel 2's results came over {span:.1f} s"
    # The sleeping callback's backlog (2 results) did not hold the run up either.
    assert elapsed < 15


def test_channels_added_and_removed_at_run_time(clip, tmp_path, model_cache):
    seen = set()
    done = threading.Event()

    def callback(result):
        seen.add(result.channel)
        if result.channel == 1:
            done.set()

    pipeline = vapipe.Pipeline(config(clip, 1, tmp_path, pace=True), cache_dir=model_cache)
    pipeline.on_result(callback)
    with pipeline:
        added = pipeline.add_channel(str(clip), "det", loop=True)
        assert added == 1 and pipeline.channel_count == 2
        assert done.wait(30), "the added channel gave no result"
        assert pipeline.remove_channel(added)
        with pytest.raises(vapipe.Error, match="model: "):
            pipeline.add_channel(str(clip), "absent")
    assert seen == {0, 1}
    assert pipeline.stats()["channels"][1]["state"] == "removed"


def test_on_result_after_start_is_refused(clip, tmp_path, model_cache):
    pipeline = vapipe.Pipeline(config(clip, 1, tmp_path, pace=True), cache_dir=model_cache)
    with pipeline:
        with pytest.raises(vapipe.Error, match="before start"):
            pipeline.on_result(print)
