// `vapipe run --config cameras.json`: the video pipeline (sophon-pipeline's yolov5s_demo --config=...).
// Ctrl-C, SIGTERM or SIGHUP (the terminal or SSH session closed) drains and closes every output; a second
// one exits at once. SIGPIPE is ignored (main): a reader of results_path "-" that goes away stops that
// output only (EPIPE), never the run.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "apps/vapipe/commands.hpp"
#include "cluster/cluster_node.hpp"
#include "core/error.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "server/http_server.hpp"
#include "server/rtsp_server.hpp"
#include "server/services.hpp"

namespace vapipe::cli {

namespace {

struct RunArgs {
  std::string config;
  std::string results;  // --results: JSON Lines of every model without its own results_path
  std::string stats = "line";
  double duration_s = 0.0;
  std::string cache_dir;
  int threads = 0;
  // --cluster (docs/cluster.md)
  std::string cluster;
  std::string node_name;
  int capacity = 0;
  int lease_ttl_s = 5;
  std::string advertise;
};

// This host's name, the default --node-name.
std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "node";
  return name;
}

// The host in a node's URLs: --advertise, else the listener's own address unless it listens on every one.
std::string advertised_host(const RunArgs& args, const std::string& bind) {
  if (!args.advertise.empty()) return args.advertise;
  if (bind != "0.0.0.0" && bind != "::") return bind;
  return host_name();
}

void print_summary(const pipeline::RunSummary& summary) {
  std::string text =
      fmt::format("vapipe run: {:.1f} s, {} channel(s), {} frames output ({:.1f} fps)\n", summary.seconds,
                  summary.channels.size(), summary.frames_output(),
                  summary.seconds > 0 ? static_cast<double>(summary.frames_output()) / summary.seconds : 0.0);
  // drop_full + drop_fail + drop_stale = dropped: why frames were not detected (queue of a live source full,
  // failure, older than max_latency_ms).
  // corrupt: frames decoded with concealed errors (output all the same); res_drop: result lines the results
  // file could not take (disk full); p50_ms/p99_ms: decode -> output latency of the channel's last 512 frames.
  // Scripts read the table by column name (scripts/soak.py, bench/cameras.sh).
  text += fmt::format(
      "{:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>10} {:>10} {:>7} {:>9} {:>9} {:>8} {:>8} "
      "{:>8}  "
      "{}\n",
      "ch", "state", "decoded", "output", "inferred", "skipped", "dropped", "drop_full", "drop_fail",
      "drop_stale", "dec_errors", "corrupt", "reconnect", "pkt_drop", "res_drop", "p50_ms", "p99_ms",
      "address");
  for (const auto& c : summary.channels) {
    text += fmt::format(
        "{:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>10} {:>10} {:>7} {:>9} {:>9} {:>8} "
        "{:>8.1f} "
        "{:>8.1f}  {}\n",
        c.channel, c.state, c.decoded, c.output, c.inferred, c.skipped, c.dropped, c.dropped_queue_full,
        c.dropped_failed, c.dropped_stale, c.decode_errors, c.corrupt_frames, c.reconnects, c.packets_dropped,
        c.results_dropped, c.latency_p50_ms, c.latency_p99_ms, c.address);
  }
  // A chained second-stage network (pose): objects it ran on, and objects whose track's fresh result was
  // reused instead (its cost follows new objects, not frames).
  std::uint64_t runs = 0, cached = 0;
  for (const auto& c : summary.channels) {
    runs += c.secondary_runs;
    cached += c.secondary_cached;
  }
  if (runs + cached > 0)
    text += fmt::format("second stage: {} object(s) run, {} reused from their track\n", runs, cached);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

void run_pipeline(const RunArgs& args) {
  if (args.stats != "line" && args.stats != "all" && args.stats != "none")
    fail("--stats '{}' must be line, all or none", args.stats);
  // Everything is checked before a thread starts: config, then models and outputs.
  pipeline::PipelineConfig config = pipeline::load_config(args.config);
  if (!args.results.empty()) {
    for (auto& model : config.models)
      if (!model.results_path) model.results_path = args.results;
  }
  pipeline::RunOptions options;
  // --cluster: what can fail fast (etcd unreachable, a config other than the cluster's, a bad node name)
  // fails before the models load; the channels then come from the cluster, not from the config's order.
  std::unique_ptr<cluster::ClusterNode> cluster_node;
  cluster::ClusterOptions cluster_options;
  if (!args.cluster.empty()) {
    if (config.mosaic)
      fail(
          "mosaic: a mosaic composes channels of one process; it cannot run with --cluster "
          "(docs/cluster.md)");
    cluster_options.endpoints = cluster::parse_etcd_url(args.cluster);
    cluster_options.node_name = args.node_name.empty() ? host_name() : args.node_name;
    cluster_options.capacity = args.capacity;
    cluster_options.lease_ttl_s = args.lease_ttl_s;
    cluster_options.config_name = args.config;
    if (config.mqtt) config.mqtt->node = cluster_options.node_name;
    options.standby = true;
  }
  options.stats_line = args.stats != "none";
  options.stats_table = args.stats == "all" || (config.stats.table && args.stats != "none");
  if (args.duration_s > 0) {
    options.duration = std::chrono::milliseconds(static_cast<std::int64_t>(args.duration_s * 1000.0));
  }
  options.cache_dir = args.cache_dir;
  options.context_threads = args.threads;

  // Signals are taken by one thread with sigwait (no work in a signal handler); every other thread,
  // created after this, inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!args.cluster.empty()) {
    std::ifstream file(args.config);
    const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    cluster_node = std::make_unique<cluster::ClusterNode>(
        config, pipeline::parse_json_strict(text, args.config), cluster_options);
  }
  auto pipeline = std::make_unique<pipeline::Pipeline>(std::move(config), options);
  if (cluster_node) cluster_node->attach(*pipeline);
  // The RTSP server, HTTP (viewer, API, metrics) and MQTT of the config, attached before the run starts.
  auto services = std::make_unique<server::Services>(*pipeline, [&](server::HttpServer& http) {
    if (cluster_node) cluster_node->register_routes(http);
  });
  if (cluster_node) {
    const auto& http = pipeline->config().http;
    const auto& rtsp = pipeline->config().rtsp_server;
    const std::string http_url =
        services->http()
            ? fmt::format("http://{}:{}", advertised_host(args, http->bind), services->http()->port())
            : "";
    const std::string rtsp_url =
        services->rtsp_server()
            ? fmt::format("rtsp://{}:{}", advertised_host(args, rtsp->bind), services->rtsp_server()->port())
            : "";
    cluster_node->start(http_url, rtsp_url);
  }
  std::atomic<bool> finished{false};
  std::thread signal_thread([&] {
    int interrupts = 0;
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0 || finished.load()) return;
      if (++interrupts == 1) {
        spdlog::warn("{}: draining and closing outputs (again to exit at once)", signal == SIGINT ? "SIGINT"
                                                                                 : signal == SIGHUP
                                                                                     ? "SIGHUP"
                                                                                     : "SIGTERM");
        if (cluster_node) cluster_node->pause_claims();
        pipeline->request_stop();
      } else {
        std::fputs("vapipe: interrupted twice: exiting without draining\n", stderr);
        std::_Exit(130);
      }
    }
  });
  pipeline::RunSummary summary;
  try {
    summary = pipeline->run();
  } catch (...) {
    if (cluster_node) cluster_node->stop();  // its thread calls the pipeline, destroyed before it
    finished = true;
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
    throw;
  }
  finished = true;
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  // Every channel has drained: the lease goes now, so the other nodes take them over at their next round.
  if (cluster_node) cluster_node->stop();
  services.reset();
  cluster_node.reset();
  pipeline.reset();
  print_summary(summary);
}

}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* command =
      app.add_subcommand("run", "Run the video pipeline of a camera config (sophon-pipeline's JSON)");
  command
      ->add_option("-c,--config", args->config, "Camera config (cameras_yolov5.json schema, docs/config.md)")
      ->required();
  command
      ->add_option("--stats", args->stats,
                   "Statistics every interval: line (sophon's line), all (+ table), none")
      ->capture_default_str();
  command
      ->add_option("--duration", args->duration_s,
                   "Stop after this many seconds (0: until Ctrl-C or the end)")
      ->check(non_negative_number());
  command->add_option("--results", args->results,
                      "Also write every model's results as JSON Lines here (\"-\": stdout), as results_path "
                      "would; a model's own results_path wins");
  command->add_option("--cache-dir", args->cache_dir,
                      "Where .onnx models are compiled to (default ~/.cache/vapipe)");
  command
      ->add_option("--threads", args->threads,
                   "oneDNN threads per inference context, inference.thread_num contexts (0: one "
                   "single-threaded context per core)")
      ->check(thread_count());
  command->add_option("--cluster", args->cluster,
                      "Share the config's channels with the other nodes of etcd://HOST:PORT[,HOST:PORT...] "
                      "(docs/cluster.md)");
  command->add_option("--node-name", args->node_name,
                      "This node's name in the cluster (default: the host name)");
  command->add_option("--capacity", args->capacity, "Channels this node runs at most (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--lease-ttl", args->lease_ttl_s,
                   "Seconds a node's claims outlive it (its etcd lease; failover takes about this long)")
      ->check(CLI::Range(2, 3600))
      ->capture_default_str();
  command->add_option(
      "--advertise", args->advertise,
      "Host name or address other nodes and clients reach this node at (the URLs of /api/cluster; "
      "default: the http/rtsp_server bind address, or the host name when that is 0.0.0.0)");
  command->callback([args] {
    // State changes of channels are the operator's view of a run: info level unless -v asked for more.
    if (spdlog::get_level() > spdlog::level::info) spdlog::set_level(spdlog::level::info);
    run_pipeline(*args);
  });
}

}  // namespace vapipe::cli
