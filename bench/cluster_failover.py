#!/usr/bin/env python3
"""Failover time of `vapipe run --cluster` (issue 23, docs/cluster.md): a real etcd and 3 real nodes on
loopback sharing C channels of a short paced clip; K times, one node (in turn) is killed with SIGKILL and the
time until every channel runs again on exactly one survivor is measured from the nodes' own APIs
(GET /api/channels, polled every 50 ms); the node is then restarted and the cluster waited on to settle
(fair shares) before the next kill. Prints each kill's time and the p50/p99, for docs/performance.md.

    python3 bench/cluster_failover.py [--kills 10] [--channels 12] [--lease-ttl 5] [--build build]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return json.load(reply)
    except OSError:
        return None


def running(port):
    listed = get(port, "/api/channels")
    if listed is None:
        return None
    return {c["name"] for c in listed["channels"] if c["state"] != "removing"}


def placement(nodes):
    placed = {}
    for name, node in nodes.items():
        names = running(node["port"])
        if names is None:
            return None
        placed[name] = names
    return placed


def settled(placed, channels, spread=1):
    every = [c for names in placed.values() for c in names]
    sizes = [len(names) for names in placed.values()]
    return len(every) == channels and len(set(every)) == channels and max(sizes) - min(sizes) <= spread


def wait(condition, limit_s):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def percentile(values, p):
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--lease-ttl", type=int, default=5)
    parser.add_argument("--build", default="build")
    parser.add_argument("--models", default=os.environ.get("VAPIPE_MODELS", "../shared/models"))
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vapipe = os.path.join(root, args.build, "apps", "vapipe", "vapipe")
    model = os.path.abspath(os.path.join(root, args.models, "yolofastestv2.onnx"))
    work = tempfile.mkdtemp(prefix="vapipe-failover-")
    children = []
    try:
        clip = os.path.join(work, "clip.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=5",
                        "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-pix_fmt", "yuv420p",
                        clip], check=True, timeout=60)
        etcd_port, peer_port = free_port(), free_port()
        etcd = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", os.path.join(work, "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"bench=http://127.0.0.1:{peer_port}"],
            stdout=open(os.path.join(work, "etcd.log"), "w"), stderr=subprocess.STDOUT)
        children.append(etcd)
        if not wait(lambda: (get(etcd_port, "/health") or {}).get("health") == "true", 20):
            sys.exit("bench: etcd did not start")

        nodes = {}

        def start(name):
            port = free_port()
            config = {
                "cards": [{"devid": 0, "cameras": [{"address": clip, "chan_num": args.channels,
                                                    "model_names": ["det"]}]}],
                "models": [{"name": "det", "path": model, "skip_frame_num": 2, "obj_threshold": 0.25,
                            "nms_threshold": 0.45, "class_threshold": 0.25}],
                "http": {"port": port},
            }
            path = os.path.join(work, f"{name}.json")
            with open(path, "w") as f:
                json.dump(config, f)
            process = subprocess.Popen(
                [vapipe, "run", "-c", path, "--cluster", f"etcd://127.0.0.1:{etcd_port}", "--node-name", name,
                 "--lease-ttl", str(args.lease_ttl), "--stats", "none", "--threads", "1"],
                stdout=open(os.path.join(work, f"{name}.log"), "a"), stderr=subprocess.STDOUT)
            children.append(process)
            nodes[name] = {"port": port, "process": process}

        for i in range(3):
            start(f"n{i}")
            if i == 0 and not wait(lambda: running(nodes["n0"]["port"]) is not None, 120):
                sys.exit("bench: the first node did not start")
        if not wait(lambda: (p := placement(nodes)) is not None and settled(p, args.channels), 60):
            sys.exit("bench: the cluster did not settle")

        times = []
        for kill in range(args.kills):
            victim = f"n{kill % 3}"
            killed_at = time.monotonic()
            nodes[victim]["process"].send_signal(signal.SIGKILL)
            nodes[victim]["process"].wait()
            survivors = {n: v for n, v in nodes.items() if n != victim}
            if not wait(lambda: (p := placement(survivors)) is not None and settled(p, args.channels,
                                                                                   spread=args.channels), 60):
                sys.exit(f"bench: kill {kill + 1}: the survivors did not take the channels over")
            elapsed = time.monotonic() - killed_at
            times.append(elapsed)
            print(f"kill {kill + 1:2} ({victim}): every channel running again after {elapsed:.2f} s", flush=True)
            start(victim)
            if not wait(lambda: (p := placement(nodes)) is not None and settled(p, args.channels), 60):
                sys.exit(f"bench: kill {kill + 1}: the cluster did not settle after the restart")

        print(f"\n{args.kills} kills, {args.channels} channels, 3 nodes, lease TTL {args.lease_ttl} s: "
              f"failover p50 {percentile(times, 50):.2f} s, p99 {percentile(times, 99):.2f} s, "
              f"max {max(times):.2f} s, mean {statistics.mean(times):.2f} s")
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
