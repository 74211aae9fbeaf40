#include "pipeline/pipeline.hpp"

#include <algorithm>
#include <ctime>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/ffmpeg_log.hpp"
#include "io/url_redaction.hpp"
#include "pipeline/model_loader.hpp"

namespace vapipe::pipeline {

namespace {

constexpr std::array<std::string_view, 5> kStageNames{"decode", "pre", "infer", "post", "output"};

}  // namespace

std::uint64_t RunSummary::frames_output() const {
  std::uint64_t total = 0;
  for (const auto& channel : channels) total += channel.output;
  return total;
}

Pipeline::Pipeline(PipelineConfig config, RunOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  io::route_ffmpeg_log_to_spdlog();
  const auto channels = expand_channels(config_);

  // Models: load each used model once, in config order (errors name models[i]).
  std::map<std::string, Detector*> detector_by_name;
  std::map<std::string, ResultsFile*> results_by_path;
  std::vector<bool> model_used(config_.models.size(), false);
  for (const auto& channel : channels) {
    model_used[static_cast<std::size_t>(channel.model - config_.models.data())] = true;
  }
  const int inference_threads =
      config_.inference.thread_num * static_cast<int>(std::count(model_used.begin(), model_used.end(), true));
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int context_threads = options_.context_threads > 0
                                  ? options_.context_threads
                                  : std::max(1, cores / std::max(1, inference_threads));

  for (std::size_t i = 0; i < config_.models.size(); ++i) {
    const ModelConfig& model = config_.models[i];
    const std::string key = fmt::format("models[{}]", i);
    if (!model_used[i]) {
      spdlog::warn("{} ('{}'): no camera uses it; not loaded", key, model.name);
      continue;
    }
    LoadedModel loaded = load_pipeline_model(model.path, key + ".path",
                                             {.cache_dir = options_.cache_dir, .show_progress = false});
    std::shared_ptr<const Network> network;
    try {
      network = loaded.model->network();
    } catch (const Error& error) {
      fail("{}.path: {}", key, error.what());
    }
    DetectorOptions detector_options{config_.preprocess, config_.inference, config_.postprocess,
                                     context_threads};
    auto detector =
        std::make_unique<Detector>(model, key, network, detector_options, [this](FrameTaskPtr task) {
          channels_[static_cast<std::size_t>(task->channel)]->deliver(std::move(task));
        });
    detector_by_name[model.name] = detector.get();
    if (model.results_path) {
      auto& shared = results_by_path[*model.results_path];
      if (shared == nullptr) {
        results_files_.push_back(std::make_unique<ResultsFile>(*model.results_path, key + ".results_path"));
        shared = results_files_.back().get();
      }
    }
    spdlog::info("model '{}': {} (stages {}), {} inference thread(s) x {} oneDNN thread(s)", model.name,
                 loaded.package_path, fmt::join(network->stage_batches(), ","), config_.inference.thread_num,
                 context_threads);
    detectors_.push_back(std::move(detector));
  }

  // Output directories for file outputs exist before the first frame (a bad path fails now, by key).
  for (std::size_t i = 0; i < config_.models.size(); ++i) {
    const auto& model = config_.models[i];
    if (!model.output_path || model.output_path->find("://") != std::string::npos) continue;
    const auto parent = std::filesystem::path(*model.output_path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    if (error)
      fail("models[{}].output_path: cannot create the folder '{}': {}", i, parent.string(), error.message());
  }

  for (const auto& channel : channels) {
    ChannelSetup setup;
    setup.channel = channel.channel;
    setup.address = channel.camera->address;
    setup.camera = channel.camera;
    setup.model = channel.model;
    setup.detector = detector_by_name.at(channel.model->name);
    setup.results = channel.model->results_path ? results_by_path.at(*channel.model->results_path) : nullptr;
    setup.drop_when_full = is_network_address(channel.camera->address) && !config_.preprocess.blocking;
    setup.encoder_threads = channels.size() > 1 ? 1 : 0;
    setup.reconnect = options_.reconnect;
    channels_.push_back(std::make_unique<Channel>(std::move(setup)));
    channels_.back()->set_on_source_done([this] { wake_.notify_all(); });
  }
  windows_.resize(channels_.size());
}

Pipeline::~Pipeline() {
  request_stop();
  for (auto& channel : channels_) channel->stop_source();
  for (auto& channel : channels_) channel->join_source();
  for (auto& detector : detectors_) detector->close();
  for (auto& detector : detectors_) detector->join();
  for (auto& channel : channels_) channel->finish_output();
}

void Pipeline::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
}

void Pipeline::add_tap_factory(TapFactory factory) {
  if (started_) fail("Pipeline::add_tap_factory: the pipeline is already running");
  for (auto& channel : channels_) channel->add_tap(factory(channel->info()));
  tap_factories_.push_back(std::move(factory));
}

RunSummary Pipeline::run() {
  const auto started = Clock::now();
  started_ = true;
  for (auto& detector : detectors_) detector->start();
  for (auto& channel : channels_) channel->start();

  const auto interval = std::chrono::milliseconds(config_.stats.interval_ms);
  auto next_tick = started + interval;
  const auto deadline = options_.duration ? started + *options_.duration : Clock::time_point::max();
  {
    std::unique_lock lock(mutex_);
    for (;;) {
      const auto wake_at = std::min(next_tick, deadline);
      wake_.wait_until(lock, wake_at, [&] {
        return stop_requested_ || std::all_of(channels_.begin(), channels_.end(),
                                              [](const auto& c) { return c->source_done(); });
      });
      if (stop_requested_) {
        spdlog::info("stopping: draining {} channel(s)", channels_.size());
        break;
      }
      if (std::all_of(channels_.begin(), channels_.end(), [](const auto& c) { return c->source_done(); })) {
        spdlog::info("every source has ended");
        break;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        spdlog::info("--duration reached: draining");
        break;
      }
      if (now >= next_tick) {
        lock.unlock();
        print_statistics(now, false);
        lock.lock();
        next_tick += interval;
        if (next_tick < now) next_tick = now + interval;
      }
    }
  }
  // Drain in dependency order: nothing accepted is lost, every output is closed properly.
  for (auto& channel : channels_) channel->stop_source();
  for (auto& channel : channels_) channel->join_source();
  for (auto& detector : detectors_) detector->close();
  for (auto& detector : detectors_) detector->join();
  for (auto& channel : channels_) channel->finish_output();
  const double seconds = elapsed_ms(started) / 1000.0;
  return summarize(seconds);
}

void Pipeline::print_statistics(Clock::time_point now, bool final_table) {
  double total_fps = 0.0;
  std::vector<ChannelStats> rows;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    const ChannelCounters& c = channels_[i]->counters();
    ChannelWindow& w = windows_[i];
    const std::uint64_t output = c.output.load(std::memory_order_relaxed);
    const std::uint64_t inferred = c.inferred.load(std::memory_order_relaxed);
    w.fps.sample(output, now);
    total_fps += w.fps.fps();
    if (options_.stats_table || final_table) {
      ChannelStats row;
      row.channel = channels_[i]->id();
      row.fps = w.fps.fps();
      row.frames = output;
      row.dropped = c.dropped.load(std::memory_order_relaxed);
      row.queue_depth = channels_[i]->queue_depth();
      const double inferred_delta = static_cast<double>(inferred - w.inferred);
      const double output_delta = static_cast<double>(output - w.output);
      auto mean_ms = [](std::uint64_t now_us, std::uint64_t& before_us, double count) {
        const double ms = count > 0 ? static_cast<double>(now_us - before_us) / 1000.0 / count : 0.0;
        before_us = now_us;
        return ms;
      };
      row.stage_ms = {mean_ms(c.decode_us.load(), w.decode_us, inferred_delta),
                      mean_ms(c.preprocess_us.load(), w.preprocess_us, inferred_delta),
                      mean_ms(c.infer_us.load(), w.infer_us, inferred_delta),
                      mean_ms(c.postprocess_us.load(), w.postprocess_us, inferred_delta),
                      mean_ms(c.output_us.load(), w.output_us, output_delta)};
      row.latency_ms = mean_ms(c.latency_us.load(), w.latency_us, output_delta);
      rows.push_back(std::move(row));
    }
    w.inferred = inferred;
    w.output = output;
  }
  std::string text;
  if (options_.stats_line && !channels_.empty()) {
    text += format_stats_line(std::time(nullptr), total_fps, channels_[0]->id(), windows_[0].fps.fps());
    text += '\n';
  }
  if (!rows.empty()) text += format_stats_table(rows, kStageNames);
  if (!text.empty()) {
    std::fputs(text.c_str(), options_.stats_out);
    std::fflush(options_.stats_out);
  }
}

RunSummary Pipeline::summarize(double seconds) const {
  RunSummary summary;
  summary.seconds = seconds;
  for (const auto& channel : channels_) {
    const ChannelCounters& c = channel->counters();
    ChannelSummary row;
    row.channel = channel->id();
    row.address = io::redact_credentials(channel->address());
    row.state = to_string(channel->state());
    row.decoded = c.decoded.load();
    row.output = c.output.load();
    row.inferred = c.inferred.load();
    row.skipped = c.skipped.load();
    row.dropped = c.dropped.load();
    row.decode_errors = c.decode_errors.load();
    row.reconnects = c.reconnects.load();
    row.packets_written = c.packets_written.load();
    row.packets_dropped = c.packets_dropped.load();
    summary.channels.push_back(std::move(row));
  }
  return summary;
}

}  // namespace vapipe::pipeline
