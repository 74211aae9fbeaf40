#!/usr/bin/env bash
# Builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer and/or ThreadSanitizer, runs them, and
# fails on any test failure or any sanitizer report (docs/reliability.md, "Sanitizers").
#
#   bash scripts/sanitize.sh [--build-only] [address|thread|all]     (default: all, address first)
#
# --build-only configures and builds without running anything: .ci/run builds the next sections' trees in the
# background while earlier sections test, then runs this script again, which finds nothing left to build.
#
# Each sanitizer has its own build folder (build-asan, build-tsan) configured with -DVAPIPE_SANITIZE. Every
# process under test (the test binaries and the `vapipe` CLI some of them start) writes its reports to
# <build>/sanitizer-logs/ rather than stderr, so a report in a child process whose exit code a test does not
# look at still fails the run.
#
# Environment (all optional):
#   VAPIPE_CMAKE_ARGS="..."   extra cmake arguments, word-split (e.g. a compiler launcher)
#   CTEST_PARALLEL=2          tests run at once
#   SANITIZE_CTEST_ARGS="..." extra ctest arguments, word-split (e.g. -R Pipeline to run a subset)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

if [[ -t 2 ]]; then c_info=$'\033[1;34m' c_err=$'\033[1;31m' c_off=$'\033[0m'; else c_info='' c_err='' c_off=''; fi
log() { printf '%s[sanitize]%s %s\n' "$c_info" "$c_off" "$*" >&2; }
die() { printf '%s[sanitize] error:%s %s\n' "$c_err" "$c_off" "$*" >&2; exit 1; }

# What each sanitizer builds and runs is chosen for what it finds, within CI's budget (docs/reliability.md,
# "CI"): every test binary costs its compile under instrumentation (2-4x the Release build's) and its run.
#
# ASan+UBSan: the test binaries that exercise our memory: queues, sources/decoder/outputs, the pipeline end
# to end, the live services, post-processing, preprocessing, the runtime's unit tests, every operator on the
# ONNX conformance suite's 1-D to 5-D and broadcast shapes (importer, reference, plain kernels) and the CLI
# (its `run` and its errors on bad input).
# Not built here (see docs/reliability.md): compiler_tests (the compiler is single-threaded and its passes run
# every real model through the reference executor: tens of minutes under a sanitizer; the fuzz targets cover
# its parsers under ASan+UBSan), detect_tests and compare_tests (real models, single-threaded CLI paths that
# run_command_tests and the pipeline tests already cover), pipeline_fault_tests (minutes of waiting on
# back-off and timeouts; the demux fuzz target feeds damaged streams to the same code under ASan+UBSan) and
# the chromium test of the web page.
address_targets=(
  core_tests infer_tests onnx_conformance_tests vision_tests models_tests
  io_input_tests io_redact_tests io_output_tests
  pipeline_unit_tests pipeline_tests
  mqtt_tests rtsp_server_tests http_server_tests control_api_tests run_http_tests viewer_tests mosaic_tests
  run_command_tests cli_errors_tests run_faults_tests quantized_onnx_tests etcd_client_tests cluster_tests
)
# TSan: the binaries whose tests run threads against each other: the bounded and fair queues, the runtime's
# concurrent contexts, the pipeline (sources, detector batching across channels, outputs, channel life
# cycle), the HTTP server and control API (channels added and removed at run time), the web viewer's
# fan-out, MQTT. Single-threaded code (vision, post-processing, the CLI's error paths, URL redaction) and the
# binaries whose threads the pipeline tests already run (sources, writers: io_*; the CLI's `run`) are left to
# ASan+UBSan.
thread_targets=(
  core_tests infer_tests
  pipeline_unit_tests pipeline_tests
  mqtt_tests http_server_tests control_api_tests viewer_tests etcd_client_tests
)
# Tests of those binaries that are left out, as a ctest -E regex.
excluded_tests='_NOT_BUILT$|^web_viewer_browser$'
# Under both: the whole-YOLOv5n accuracy tests run YOLOv5n at 640 through the single-threaded reference
# executor, which is our code and so instrumented (30-110 s each); their YOLO-FastestV2 twins run the same
# executor and runtime code paths (ModelAccuracy.YoloFastestV2*), so memory and UB findings are not lost. The
# normal build runs all of them.
# RunFaults.ThreeRuns… races three compiles of YOLOv5n (a compile long enough to overlap); the cache's
# memory paths run in RunFaults.APlantedCacheEntry… with the small model.
excluded_model_tests='^ModelAccuracy\.(YoloV5n|Fp16Export|DynamicShape)|^LowPrecisionModels\.|^RunFaults\.ThreeRuns'
# The two RTSP tests that watch a stream for 20-30 s of real time (a client stalled beside a watcher; every
# channel read by three clients) wait on the clock, not on our memory: their paths (per-client medias, the
# tap, dropping to a key frame) run in the shorter RTSP tests here and in full in the normal build.
excluded_model_tests+='|^RtspServerOneChannel\.StalledTcpClient|^RtspServer\.EveryChannel'
# Under TSan only: the runtime's single-threaded unit tests (one OpenMP thread under TSan, below, so nothing
# to race) and the int8/bf16 trunks; RuntimeOps.DifferentNetworksRunConcurrentlyFromDifferentThreads stays.
excluded_tsan_tests='^ModelAccuracy\.|^Precisions/LowPrecision\.|^LowPrecision\.|^MemoryPlanner\.|^PlainKernels\.'
excluded_tsan_tests+='|^RuntimeOps\.(Convolutions|ResidualSum|YoloNeck|HeadShape|CallerOwned)'
# Also under TSan only: tests whose real clients (ffprobe, ffmpeg, gst-launch against our RTSP server; an
# ffmpeg listener the writer must reach within 20 s) give up before the TSan-slowed server answers; their
# timeouts are the clients' own. Their streaming paths run under ASan+UBSan.
excluded_tsan_tests+='|^RtspServer\.Every|^RtspServer\.Mount|^RtspServerOneChannel\.|^StreamWriter\.DeadDestinations'

# Runs one sanitizer: $1 = address | thread.
run_sanitizer() {
  local sanitizer=$1 dir suppressions
  case $sanitizer in
    address) dir=${ASAN_BUILD_DIR:-build-asan} ;;
    thread) dir=${TSAN_BUILD_DIR:-build-tsan} ;;
  esac
  suppressions=$root/scripts/sanitizers
  local logs=$root/$dir/sanitizer-logs
  local started=$SECONDS

  local cmake_args=(-S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVAPIPE_SANITIZE="$sanitizer"
                    -DVAPIPE_BUILD_TESTS=ON -DVAPIPE_BUILD_BENCH=OFF
                    # The libraries and the CLI as unity sources (not the tests: tests/CMakeLists.txt): the
                    # headers' templates are instantiated and instrumented once per batch of files, not once
                    # per file (TSan tree, GCC 12: 342 s of CPU instead of 620, 2026-12-07).
                    -DCMAKE_UNITY_BUILD=ON
                    # GCC's own manual: sanitizers change code generation and can raise false warnings
                    # (-Wmaybe-uninitialized, -Wstringop-*); warnings are enforced by the normal build.
                    -DVAPIPE_WERROR=OFF)
  # Clang for both: the ASan+UBSan tree (libraries at -O1, tests, CLI and servers at -O0, lld) built in 392 s
  # on a 2-core Zen 5 where GCC 12 took 584 s, the TSan tree in 228 s where GCC 12 took 542-598 s
  # (2026-12-07), and every test passed with no report under both compilers.
  cmake_args+=(-DCMAKE_CXX_COMPILER=clang++)
  if [[ -n ${VAPIPE_CMAKE_ARGS:-} ]]; then
    # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
    cmake_args+=(${VAPIPE_CMAKE_ARGS})
  fi
  log "$sanitizer: cmake ${cmake_args[*]}"
  cmake "${cmake_args[@]}" >/dev/null
  local -n targets=${sanitizer}_targets
  log "$sanitizer: building ${#targets[@]} test binaries"
  cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"
  local built=$SECONDS
  if ((build_only)); then
    log "$sanitizer: built in $((built - started)) s (--build-only: no tests run)"
    return 0
  fi

  rm -rf "$logs"
  mkdir -p "$logs" "$root/$dir/tmp"
  # Options common to the sanitizers: stop at the first report, write it to a per-process file, and symbolize.
  local common="halt_on_error=1:log_path=$logs/report:print_stacktrace=1"
  local -a env=(
    # Scratch folders of the tests (tests/support/test_data.hpp) under this build folder: other builds on the
    # same machine use the same test names.
    TMPDIR="$root/$dir/tmp"
    # Waits in tests on real processes (a frame count reached, a client served) scale by this factor; their
    # assertions stay the same (tests/support/timing.hpp).
    VAPIPE_TEST_TIME_SCALE="$([[ $sanitizer == thread ]] && echo 8 || echo 3)"
    UBSAN_OPTIONS="$common:suppressions=$suppressions/ubsan.supp"
    # GLib's slice allocator hands one thread's freed GstBuffers to another without anything a sanitizer
    # sees (TSan: a race on every recycled buffer; ASan: no use-after-free through a magazine); plain
    # malloc/free makes each allocation visible.
    G_SLICE=always-malloc
  )
  if [[ $sanitizer == address ]]; then
    env+=(ASAN_OPTIONS="$common:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1"
          LSAN_OPTIONS="suppressions=$suppressions/lsan.supp:print_suppressions=0")
  else
    env+=(TSAN_OPTIONS="$common:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp"
          # libgomp is not built with TSan: its barriers are invisible to it, so oneDNN's and our OpenMP loops
          # would show as races between the team's threads. One OpenMP thread per team (a limit that
          # omp_set_num_threads cannot lift) leaves the pipeline's own threads, which is what TSan is for.
          OMP_THREAD_LIMIT=1)
  fi

  local exclude="$excluded_tests|$excluded_model_tests"
  [[ $sanitizer == thread ]] && exclude+="|$excluded_tsan_tests"
  local -a ctest_args=(--test-dir "$dir" --output-on-failure -j "${CTEST_PARALLEL:-2}" -E "$exclude")
  if [[ -n ${SANITIZE_CTEST_ARGS:-} ]]; then
    # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
    ctest_args+=(${SANITIZE_CTEST_ARGS})
  fi
  log "$sanitizer: ctest ${ctest_args[*]}"
  local test_status=0
  env "${env[@]}" ctest "${ctest_args[@]}" || test_status=$?

  local reports
  reports=$(find "$logs" -type f -name 'report*' | sort)
  log "$sanitizer: build $((built - started)) s, tests $((SECONDS - built)) s"
  if [[ -n $reports ]]; then
    local report
    for report in $reports; do
      printf '\n---- %s\n' "${report#"$root"/}" >&2
      cat "$report" >&2
    done
    die "$sanitizer: $(wc -l <<<"$reports") sanitizer report(s) above (fix the code; suppress third-party only)"
  fi
  ((test_status == 0)) || die "$sanitizer: tests failed (ctest exit $test_status)"
  log "$sanitizer: no reports, every test passed"
}

build_only=0
if [[ ${1:-} == --build-only ]]; then
  build_only=1
  shift
fi
mode=${1:-all}
case $mode in
  address | thread) run_sanitizer "$mode" ;;
  all) run_sanitizer address && run_sanitizer thread ;;
  *) die "usage: $0 [--build-only] [address|thread|all] (got '$mode')" ;;
esac
