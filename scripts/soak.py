#!/usr/bin/python3
"""Soak of `vapipe run` (issue 6, items 4 and 5); run it through scripts/soak.sh.

Four channels of YOLO-FastestV2 for --minutes (or --short: about 2.5 minutes):
  ch 0  a looping file (paced)
  ch 1  an RTSP camera on loopback (scripts/soak_camera.py) that is killed and started again every cycle
  ch 2  a file played once (it ends early: its channel ends, the others go on)
  ch 3  a file played once, long; removed through the control API at the first cycle
Every cycle: the camera is killed and restarted, the channel added last is removed (DELETE /api/channels)
and a new one (a looping file) is added (POST). The script samples the process's RSS, open fds and threads
(/proc/PID) every second and checks:
  - resource release: after each removal, once the channel reads `removed`, the open fds and the threads are
    back to what they were after the first removal (same channels running: ch 0, ch 1, none added); the
    camera restarts in between count too (a reconnect that leaked a socket would show here);
  - memory: RSS after the last removal minus RSS after the second removal (like for like, warm-up done)
    stays under --rss-growth-mib;
  - frame accounting, from the final summary after a clean SIGINT drain: per channel
    decoded == output (every decoded frame reached the outputs) and
    decoded == inferred + skipped + dropped (nothing vanished without a reason);
  - the camera channel reconnected once per camera restart, and /api/channels agreed with the summary.
Exits 1 with one line per failed check; prints a summary table either way.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def log(message: str) -> None:
    print(f"soak [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_quiet(command: list[str]) -> None:
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"soak: {' '.join(command[:3])} ... failed: {result.stderr.strip()[-500:]}")


class Process:
    """/proc view of the vapipe process."""

    def __init__(self, pid: int):
        self.pid = pid

    def status(self) -> dict[str, int]:
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    fields[key] = int(value.split()[0])
        return fields

    def fd_targets(self) -> dict[str, str]:
        targets = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                targets[fd] = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                pass  # closed while listing
        return targets

    def sample(self) -> dict:
        status = self.status()
        return {"t": time.monotonic(), "rss_kib": status["VmRSS"], "threads": status["Threads"],
                "fds": len(self.fd_targets())}


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        # The server takes bodies as application/json only (a CSRF defence); urllib would say form data.
        headers = {"Connection": "close"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            return json.loads(text) if response.headers.get_content_type() == "application/json" else text

    def channels(self) -> dict[int, dict]:
        return {c["id"]: c for c in self.call("GET", "/api/channels?all=1")["channels"]}

    def channel(self, channel: int) -> dict:
        return self.call("GET", f"/api/channels/{channel}")


class Soak:
    def __init__(self, args):
        self.args = args
        self.failures: list[str] = []
        self.samples: list[dict] = []
        self.levels: list[dict] = []  # after each removal: fds, threads, rss
        self.camera_restarts = 0
        self.work = Path(args.work_dir or f"/tmp/vapipe-soak-{os.getpid()}")
        self.vapipe = Path(args.build_dir) / "apps/vapipe/vapipe"
        self.camera: subprocess.Popen | None = None
        self.stop_sampling = threading.Event()

    def fail(self, message: str) -> None:
        log(f"FAIL: {message}")
        self.failures.append(message)

    # --- inputs ---------------------------------------------------------------------------------------------
    def make_clips(self, once_seconds: float, long_seconds: float) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        base = self.work / "vtest.mp4"  # 795 frames at 10 fps: 79.5 s
        run_quiet(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(VTEST), "-an", "-c:v", "libx264",
                   "-preset", "veryfast", "-crf", "30", "-g", "20", str(base)])
        self.loop_clip = base
        self.once_clip = self.work / "once.mp4"
        run_quiet(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(base), "-t", f"{once_seconds:.1f}",
                   "-c", "copy", str(self.once_clip)])
        self.long_clip = self.work / "long.mp4"
        repeats = max(0, int(long_seconds // 79.5))
        run_quiet(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", str(repeats), "-i", str(base),
                   "-c", "copy", str(self.long_clip)])

    def start_camera(self) -> None:
        self.camera = subprocess.Popen(["/usr/bin/python3", str(REPO / "scripts/soak_camera.py"),
                                        str(self.camera_port)], stdout=subprocess.PIPE, text=True)
        line = self.camera.stdout.readline()  # printed once it listens
        if "rtsp://" not in line:
            sys.exit(f"soak: the camera did not start on port {self.camera_port}")

    def kill_camera(self) -> None:
        if self.camera is None:
            return
        self.camera.kill()  # a camera switched off: no TEARDOWN, the socket just goes
        self.camera.wait()
        self.camera = None

    def write_config(self) -> Path:
        models = Path(os.environ.get("VAPIPE_MODELS", REPO.parent / "shared/models"))
        model = models / "yolofastestv2.onnx"
        if not model.is_file():
            sys.exit(f"soak: no model at {model} (set VAPIPE_MODELS)")

        def camera(address, loop):
            return {"address": str(address), "chan_num": 1, "model_names": ["fastest"], "loop": loop,
                    "pace": True}

        config = {
            "cards": [{"devid": 0, "cameras": [
                camera(self.loop_clip, True),
                {"address": f"rtsp://127.0.0.1:{self.camera_port}/cam", "chan_num": 1,
                 "model_names": ["fastest"], "rtsp_transport": "tcp"},
                camera(self.once_clip, False),
                camera(self.long_clip, False),
            ]}],
            "pipeline": {"preprocess": {"thread_num": 1, "queue_size": 8, "blocking": False},
                         "inference": {"thread_num": 1, "queue_size": 8},
                         "postprocess": {"thread_num": 1, "queue_size": 8}},
            "models": [{"name": "fastest", "path": str(model), "model_type": "yolofastestv2",
                        # The detector on every third frame (as in docs/performance.md): 4 channels of
                        # 10 fps fit 2 shared cores; skipped frames are accounted for like the others.
                        "skip_frame_num": 2,
                        "output_path": str(self.work / "out/fastest.mp4"), "output_mode": "passthrough",
                        "results_path": str(self.work / "out/fastest.jsonl"),
                        "obj_threshold": 0.3, "nms_threshold": 0.45, "class_threshold": 0.3}],
            "http": {"port": self.http_port},
            "stats": {"interval_ms": 10000},
        }
        (self.work / "out").mkdir(exist_ok=True)
        path = self.work / "cameras.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    # --- waiting on the run -------------------------------------------------------------------------------
    def wait_for(self, what: str, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.vapipe_process.poll() is not None:
                self.fail(f"vapipe exited (status {self.vapipe_process.returncode}) while waiting for {what}")
                raise SystemExit(self.report())
            try:
                if predicate():
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                pass  # not up yet / a request lost to load: ask again
            time.sleep(0.5)
        self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        return False

    def streaming(self, channel: int, more_than: int = 0) -> bool:
        c = self.api.channel(channel)
        return c["state"] == "streaming" and c["counters"]["output"] > more_than

    def sampler(self) -> None:
        while not self.stop_sampling.wait(1.0):
            try:
                self.samples.append(self.process.sample())
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return

    def settled_level(self, label: str) -> dict:
        """fds/threads once transient ones (an HTTP connection closing, a reconnect) are gone: the same
        value three times in a row, half a second apart (at most 20 s)."""
        history = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s = self.process.sample()
            history.append((s["fds"], s["threads"]))
            if len(history) >= 3 and len(set(history[-3:])) == 1:
                break
            time.sleep(0.5)
        s["label"] = label
        s["fd_targets"] = self.process.fd_targets()
        return s

    # --- the run ----------------------------------------------------------------------------------------------
    def cycle(self, index: int, remove_id: int) -> int:
        log(f"cycle {index}: camera off")
        reconnects_before = self.api.channel(1)["counters"]["reconnects"]
        self.kill_camera()
        self.wait_for("channel 1 to notice the camera is gone",
                      lambda: self.api.channel(1)["state"] != "streaming", 30)
        time.sleep(self.args.camera_off_s)  # the camera stays off a while: back-off retries meanwhile
        self.start_camera()
        self.camera_restarts += 1
        log(f"cycle {index}: camera on again")
        output_before = self.api.channel(1)["counters"]["output"]
        self.wait_for("channel 1 to stream again",
                      lambda: self.api.channel(1)["counters"]["reconnects"] > reconnects_before
                      and self.streaming(1, output_before), 90)

        if self.api.channel(remove_id)["state"] != "removing":  # not still draining from the last cycle
            log(f"cycle {index}: DELETE /api/channels/{remove_id}")
            self.api.call("DELETE", f"/api/channels/{remove_id}")
        # Its queued frames still go through the detector first: on an overloaded machine that takes a while.
        if not self.wait_for(f"channel {remove_id} to be removed",
                             lambda: self.api.channel(remove_id)["state"] == "removed", 240):
            return remove_id  # still draining: no level to compare; the next cycle removes it again
        level = self.settled_level(f"after removing channel {remove_id}")
        # Like for like only: channel 2 (played once) holds its threads and files until it ended.
        if self.api.channel(2)["state"] != "ended":
            log(f"cycle {index}: channel 2 still playing (overloaded machine): no level taken")
        else:
            self.levels.append(level)
        if not self.levels:
            return self.add_channel(index)
        base = self.levels[0]
        log(f"cycle {index}: fds {level['fds']} threads {level['threads']} rss {level['rss_kib'] // 1024} MiB "
            f"(after the first removal: fds {base['fds']} threads {base['threads']})")
        if level is not base:
            if level["fds"] != base["fds"]:
                new = sorted(set(level["fd_targets"].items()) - set(base["fd_targets"].items()))
                self.fail(f"cycle {index}: {level['fds']} fds open after removing channel {remove_id}, "
                          f"{base['fds']} after the first removal; new since: {new[:12]}")
            if level["threads"] != base["threads"]:
                self.fail(f"cycle {index}: {level['threads']} threads after removing channel {remove_id}, "
                          f"{base['threads']} after the first removal")

        return self.add_channel(index)

    def add_channel(self, index: int) -> int:
        added = self.api.call("POST", "/api/channels",
                              {"address": str(self.loop_clip), "model": "fastest", "loop": True})
        added_id = added["id"]
        log(f"cycle {index}: POST /api/channels -> channel {added_id}")
        self.wait_for(f"channel {added_id} to stream", lambda: self.streaming(added_id, 10), 60)
        return added_id

    def run(self) -> int:
        a = self.args
        total_s = a.minutes * 60.0
        cycles = max(2, int(total_s // a.cycle_s))
        self.camera_port, self.http_port = free_port(), free_port()
        log(f"work dir {self.work}; {cycles} cycles of {a.cycle_s:.0f} s")
        self.make_clips(once_seconds=min(30.0, a.cycle_s / 2), long_seconds=total_s + 120)
        config = self.write_config()
        self.start_camera()
        cache = Path(a.build_dir) / "soak-cache"
        self.log_path = self.work / "vapipe.log"
        log(f"vapipe run --config {config} (log: {self.log_path})")
        self.log_file = open(self.log_path, "w")
        self.vapipe_process = subprocess.Popen(
            [str(self.vapipe), "run", "--config", str(config), "--cache-dir", str(cache)],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        self.process = Process(self.vapipe_process.pid)
        self.api = Api(self.http_port)
        try:
            # Up to 5 minutes: a fresh machine compiles the model first (cached in the build dir after).
            if not self.wait_for("every configured channel to stream",
                                 lambda: all(self.streaming(c) for c in (0, 1, 3)), 300):
                raise RuntimeError("the run did not start")
            started = time.monotonic()  # the cycles count from a running pipeline
            threading.Thread(target=self.sampler, daemon=True).start()
            self.wait_for("channel 2 (a file played once) to end",
                          lambda: self.api.channel(2)["state"] == "ended", 120)
            remove_id = 3
            for index in range(1, cycles + 1):
                next_at = started + index * a.cycle_s
                while time.monotonic() < next_at and self.vapipe_process.poll() is None:
                    time.sleep(1.0)
                remove_id = self.cycle(index, remove_id)
            while time.monotonic() < started + total_s and self.vapipe_process.poll() is None:
                time.sleep(1.0)
            self.before_stop = self.api.channels()
            self.metrics = self.api.call("GET", "/metrics")
        except SystemExit:
            raise
        except Exception as error:  # the run did not start, or an API answer is not what the API promises
            self.fail(f"{type(error).__name__}: {error}")
        finally:
            self.stop_sampling.set()
        log("SIGINT: draining")
        self.vapipe_process.send_signal(signal.SIGINT)
        try:
            status = self.vapipe_process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("vapipe did not finish draining within 60 s of SIGINT")
            self.vapipe_process.kill()
            status = self.vapipe_process.wait()
        self.kill_camera()
        self.log_file.close()
        if status != 0:
            self.fail(f"vapipe exited with status {status} after SIGINT (log: {self.log_path})")
        return self.report()

    # --- checks and the table ----------------------------------------------------------------------------
    def final_summary(self) -> dict[int, dict]:
        """The per-channel table `vapipe run` prints at the end, by its column names."""
        text = self.log_path.read_text(errors="replace")
        rows = {}
        lines = text.splitlines()
        header = next((i for i, line in enumerate(lines) if re.match(r"^\s*ch\s+state\s+decoded\s", line)), None)
        if header is None:
            self.fail(f"no final summary table in {self.log_path}")
            return rows
        names = lines[header].split()[:-1]  # the last column, the address, may hold anything
        for line in lines[header + 1:]:
            fields = line.split()
            if len(fields) < len(names) or not fields[0].isdigit():
                break
            # Counts are integers; the latency columns (p50_ms, p99_ms) are milliseconds with a decimal.
            row = {name: (value if name == "state" else float(value) if name.endswith("_ms") else int(value))
                   for name, value in zip(names, fields)}
            rows[row.pop("ch")] = row
        return rows

    def report(self) -> int:
        summary = self.final_summary() if self.vapipe_process.poll() is not None else {}
        for ch, c in sorted(summary.items()):
            if c["decoded"] != c["output"]:
                self.fail(f"channel {ch}: {c['decoded']} frames decoded but {c['output']} output")
            accounted = c["inferred"] + c["skipped"] + c["dropped"]
            if c["decoded"] != accounted:
                self.fail(f"channel {ch}: {c['decoded']} decoded != {c['inferred']} inferred + {c['skipped']} "
                          f"skipped + {c['dropped']} dropped")
            if "drop_full" in c and c["dropped"] != c["drop_full"] + c["drop_fail"] + c.get("drop_stale", 0):
                self.fail(f"channel {ch}: {c['dropped']} dropped != {c['drop_full']} for a full queue + "
                          f"{c['drop_fail']} failed + {c.get('drop_stale', 0)} stale")
            if c["decoded"] == 0:
                self.fail(f"channel {ch}: no frame decoded")
            api = getattr(self, "before_stop", {}).get(ch)
            if api and api["counters"]["decoded"] > c["decoded"]:
                self.fail(f"channel {ch}: /api/channels said {api['counters']['decoded']} decoded before the "
                          f"stop, the summary {c['decoded']}")
        if 1 in summary and summary[1]["reconnect"] < self.camera_restarts:
            self.fail(f"channel 1: {summary[1]['reconnect']} reconnects for {self.camera_restarts} camera "
                      "restarts")
        metrics = getattr(self, "metrics", "")
        if summary and "vapipe_frames_decoded_total" not in metrics:
            self.fail("/metrics has no vapipe_frames_decoded_total")

        rss_growth_mib = None
        if len(self.levels) >= 3:
            rss_growth_mib = (self.levels[-1]["rss_kib"] - self.levels[1]["rss_kib"]) / 1024
            if rss_growth_mib > self.args.rss_growth_mib:
                self.fail(f"RSS grew {rss_growth_mib:.1f} MiB between the second and the last removal "
                          f"(bound {self.args.rss_growth_mib} MiB)")
        elif not self.failures:
            self.fail("fewer than 3 removals: no RSS comparison (run longer)")

        print("\n==== soak summary")
        if self.samples:
            rss = [s["rss_kib"] / 1024 for s in self.samples]
            fds = [s["fds"] for s in self.samples]
            threads = [s["threads"] for s in self.samples]
            minutes = (self.samples[-1]["t"] - self.samples[0]["t"]) / 60
            print(f"sampled {len(self.samples)} times over {minutes:.1f} min")
            print(f"RSS MiB   start {rss[0]:.1f}  end {rss[-1]:.1f}  max {max(rss):.1f}")
            print(f"fds       start {fds[0]}  end {fds[-1]}  max {max(fds)}")
            print(f"threads   start {threads[0]}  end {threads[-1]}  max {max(threads)}")
        for level in self.levels:
            print(f"{level['label']:<32} fds {level['fds']:>4}  threads {level['threads']:>3}  "
                  f"RSS {level['rss_kib'] / 1024:.1f} MiB")
        if rss_growth_mib is not None:
            print(f"RSS growth, 2nd -> last removal: {rss_growth_mib:+.1f} MiB (bound {self.args.rss_growth_mib})")
        print(f"camera restarts {self.camera_restarts}")
        print(f"{'ch':>3} {'state':>9} {'decoded':>8} {'output':>8} {'inferred':>8} {'skipped':>7} "
              f"{'dropped':>7} {'(full':>6} {'fail)':>5} {'reconn':>6}")
        for ch, c in sorted(summary.items()):
            print(f"{ch:>3} {c['state']:>9} {c['decoded']:>8} {c['output']:>8} {c['inferred']:>8} "
                  f"{c['skipped']:>7} {c['dropped']:>7} {c.get('drop_full', '-'):>6} {c.get('drop_fail', '-'):>5} "
                  f"{c['reconnect']:>6}")
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        if self.failures:
            print(f"\nsoak FAILED ({len(self.failures)} check(s)); log: {self.log_path}")
            for failure in self.failures:
                print(f"  - {failure}")
            return 1
        print("\nsoak passed")
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--short", action="store_true", help="CI: about 2.5 minutes, 3 cycles")
    parser.add_argument("--cycle-s", type=float, default=180.0, help="camera restart + remove/add period")
    parser.add_argument("--camera-off-s", type=float, default=5.0)
    parser.add_argument("--rss-growth-mib", type=float, default=24.0)
    parser.add_argument("--build-dir", default=str(REPO / os.environ.get("BUILD_DIR", "build")))
    parser.add_argument("--work-dir")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (clips, outputs, log)")
    args = parser.parse_args()
    if args.short:
        args.minutes, args.cycle_s, args.camera_off_s = 2.5, 40.0, 3.0
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        soak.kill_camera()
        if getattr(soak, "vapipe_process", None) is not None and soak.vapipe_process.poll() is None:
            soak.vapipe_process.kill()


if __name__ == "__main__":
    sys.exit(main())
