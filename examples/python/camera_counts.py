#!/usr/bin/env python3
"""Run a camera (or a video file) through the pipeline and print, once a second, how many objects of each class
it sees.

    PYTHONPATH=build/python python3 examples/python/camera_counts.py rtsp://camera/stream ../shared/models/yolov5n.onnx
    PYTHONPATH=build/python python3 examples/python/camera_counts.py /usr/share/doc/opencv-doc/examples/data/vtest.avi \
        ../shared/models/yolov5n.onnx

A file plays once at its own frame rate, as a camera would deliver it (--loop: again and again, as
sophon-pipeline's demos play their files). Ctrl-C stops it.
"""

import argparse
import collections
import os
import threading
import time

import vapipe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="rtsp://..., a video file, ...")
    parser.add_argument("model", help=".vpk or .onnx (compiled into ~/.cache/vapipe on load)")
    parser.add_argument("--loop", action="store_true", help="a file: start again at its end")
    args = parser.parse_args()

    config = {
        "cards": [{"devid": 0, "cameras": [{"address": args.address, "chan_num": 1, "model_names": ["det"],
                                                "loop": args.loop}]}],
        "models": [{"name": "det", "path": os.path.abspath(args.model), "obj_threshold": 0.3,
                    "nms_threshold": 0.45, "class_threshold": 0.3}],
    }
    latest = collections.Counter()
    lock = threading.Lock()

    def on_result(result):
        # Called on the pipeline's own thread, per frame in order; a slow callback only loses results.
        counts = collections.Counter(d.label for d in result.detections)
        with lock:
            latest.clear()
            latest.update(counts)

    pipeline = vapipe.Pipeline(config)
    pipeline.on_result(on_result)
    with pipeline:
        try:
            while not pipeline.wait(timeout=1.0):
                with lock:
                    line = ", ".join(f"{label}: {n}" for label, n in latest.most_common()) or "nothing"
                channel = pipeline.stats()["channels"][0]
                print(f"{time.strftime('%H:%M:%S')} frame {channel['output']}: {line}", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    try:
        main()
    except vapipe.Error as error:
        raise SystemExit(f"camera_counts: {error}")
