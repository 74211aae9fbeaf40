#!/usr/bin/env python3
"""Face ID: name the faces of a camera after a gallery of known people, and say who comes and goes.

    vapipe compile ../shared/models/scrfd_500m_bnkps.onnx -o scrfd.vpk
    vapipe compile ../shared/models/mobilefacenet.onnx -o mobilefacenet.vpk
    vapipe combine scrfd.vpk mobilefacenet.vpk -o face.vpk
    PYTHONPATH=build/python python3 examples/python/face_gallery.py face.vpk faces/ rtsp://camera/stream

`faces/` holds a photo per person (alice.jpg) or a folder of photos per person (alice/1.jpg, ...), as the
pipeline's "gallery" key reads it (docs/config.md). Without an address the gallery's own photos are checked
instead: each must be named after itself. A video file plays once at its own frame rate (--loop: again and
again).
"""

import argparse
import os
import pathlib

import vapipe


def check_gallery(package, gallery):
    detector = vapipe.Detector(package, gallery=gallery)
    for photo in sorted(pathlib.Path(gallery).rglob("*")):
        if photo.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
            continue
        names = [(d.identity["name"], round(d.identity["similarity"], 3))
                 for d in detector.detect(str(photo)) if d.identity]
        print(f"{photo}: {names or 'no face'}")


def watch(package, gallery, address, loop):
    config = {
        "cards": [{"devid": 0, "cameras": [{"address": address, "chan_num": 1, "model_names": ["face"],
                                            "loop": loop}]}],
        "models": [{"name": "face", "path": os.path.abspath(package), "obj_threshold": 0.5,
                    "nms_threshold": 0.4, "gallery": os.path.abspath(gallery)}],
    }
    present = set()

    def on_result(result):
        # A track's identity is its vote over its frames (docs/config.md): names are stable across frames.
        names = {d.identity["name"] for d in result.detections if d.identity and d.identity["known"]}
        for name in sorted(names - present):
            print(f"{result.pts_seconds:8.2f} s  {name} arrives")
        for name in sorted(present - names):
            print(f"{result.pts_seconds:8.2f} s  {name} leaves")
        present.clear()
        present.update(names)

    pipeline = vapipe.Pipeline(config)
    pipeline.on_result(on_result)
    with pipeline:
        try:
            pipeline.wait()
        except KeyboardInterrupt:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", help="a face detector + face embedding package (vapipe combine)")
    parser.add_argument("gallery", help="folder of known faces")
    parser.add_argument("address", nargs="?", help="camera or video; none: check the gallery's photos")
    parser.add_argument("--loop", action="store_true", help="a video file: start again at its end")
    args = parser.parse_args()
    if args.address:
        watch(args.package, args.gallery, args.address, args.loop)
    else:
        check_gallery(args.package, args.gallery)


if __name__ == "__main__":
    try:
        main()
    except vapipe.Error as error:
        raise SystemExit(f"face_gallery: {error}")
