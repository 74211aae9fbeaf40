#!/usr/bin/env python3
"""Detect the objects of an image, as `vapipe detect` does.

    PYTHONPATH=build/python python3 examples/python/detect_image.py ../shared/models/yolov5n.onnx \
        /usr/share/doc/opencv-doc/examples/data/messi5.jpg

An .onnx model is compiled first (once) into a .vpk in the current folder (the models folder may be read-only).
"""

import argparse
import os

import vapipe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help=".vpk package, or .onnx to compile first")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--conf", type=float, help="score threshold (default: the package's, else 0.25)")
    args = parser.parse_args()

    package = args.model
    if package.endswith(".onnx"):
        package = os.path.splitext(os.path.basename(package))[0] + ".vpk"
        if not os.path.exists(package):
            print(f"compiling {args.model} -> {package}")
            vapipe.compile(args.model, package, batch=[1, 4])
    detector = vapipe.Detector(package, conf=args.conf)
    for path in args.images:
        image = vapipe.imread(path)  # uint8 BGR (H, W, 3); a cv2.imread() array works the same
        for d in detector.detect(image):
            x1, y1, x2, y2 = d.box
            print(f"{path}: {d.label} {d.score:.3f} [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")


if __name__ == "__main__":
    try:
        main()
    except vapipe.Error as error:
        raise SystemExit(f"detect_image: {error}")
