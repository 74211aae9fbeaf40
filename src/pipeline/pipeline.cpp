#include "pipeline/pipeline.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/ffmpeg_log.hpp"
#include "io/url_redaction.hpp"
#include "models/face_gallery.hpp"
#include "models/secondary_runner.hpp"
#include "pipeline/model_loader.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::pipeline {

namespace {

// Creates, writes and removes a small file in `folder`: "" when that works, else why not (strerror).
std::string probe_folder_write(const std::filesystem::path& folder) {
  const std::filesystem::path probe =
      folder / fmt::format(".vapipe-write-probe-{}", static_cast<long>(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::strerror(errno);
  const char bytes[4096] = {};
  const bool written =
      ::write(fd, bytes, sizeof(bytes)) == static_cast<ssize_t>(sizeof(bytes)) && ::fsync(fd) == 0;
  const int write_error = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  return written ? "" : std::strerror(write_error);
}

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
  std::map<std::string, ResultsFile*> results_by_path;
  std::vector<bool> model_used(config_.models.size(), false);
  for (const auto& channel : channels) {
    model_used[static_cast<std::size_t>(channel.model - config_.models.data())] = true;
  }
  // Inference threads. By default one single-threaded context per core (the cores shared among the models in
  // use, at least inference.thread_num per model), each running whole batches: a context whose oneDNN team
  // splits every layer waits at each layer's barrier for whichever team thread the OS has just given to a
  // decoder or to another process (issue 21: 4 x 1080p beside one busy loop kept 0.29x of its quiet
  // throughput that way). `--threads T` keeps inference.thread_num contexts of T oneDNN threads each.
  const int models_in_use =
      std::max(1, static_cast<int>(std::count(model_used.begin(), model_used.end(), true)));
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  StageConfig inference = config_.inference;
  int context_threads = options_.context_threads;
  if (context_threads == 0) {
    inference.thread_num = std::max(inference.thread_num, std::max(1, cores / models_in_use));
    context_threads = 1;
  }

  for (std::size_t i = 0; i < config_.models.size(); ++i) {
    const ModelConfig& model = config_.models[i];
    const std::string key = fmt::format("models[{}]", i);
    if (!model_used[i]) {
      const bool chained =
          std::any_of(config_.models.begin(), config_.models.end(),
                      [&](const ModelConfig& m) { return m.secondary && m.secondary->model == model.name; });
      if (!chained) spdlog::warn("{} ('{}'): no camera uses it; not loaded", key, model.name);
      continue;
    }
    LoadedModel loaded = load_pipeline_model(model.path, key + ".path",
                                             {.cache_dir = options_.cache_dir, .show_progress = false});
    // A package of several networks (vapipe combine) runs as a chain: its first network that is not a
    // top-down one detects, its first top-down one (pose) runs on the detections of its classes.
    std::shared_ptr<const Network> network;
    std::shared_ptr<const Network> secondary;
    try {
      for (const auto& name : loaded.model->network_names()) {
        auto candidate = loaded.model->network(name);
        const bool top_down = models::SecondaryRunner::is_top_down(candidate->metadata());
        if (!top_down && !network) {
          network = std::move(candidate);
        } else if (top_down && !secondary) {
          secondary = std::move(candidate);
        }
      }
      if (!network) fail("the package holds no network that runs on whole frames (only top-down ones)");
    } catch (const Error& error) {
      fail("{}.path: {}", key, error.what());
    }
    if (model.secondary) secondary = configured_secondary(model, key, *loaded.model, network);
    if (secondary) {
      secondary_by_model_[model.name] = secondary;
      spdlog::info("model '{}': network '{}' runs on the objects of '{}'", model.name, secondary->name(),
                   network->name());
    }
    if (model.gallery) {
      const bool embeds =
          secondary &&
          secondary->metadata().value("head", nlohmann::json::object()).value("form", "") == "embedding";
      if (!embeds)
        fail(
            "{}.gallery: the package '{}' has no face embedding network to match faces with (combine a face "
            "detector and a face embedding network: vapipe combine det.vpk emb.vpk -o face.vpk)",
            key, model.path);
      const float threshold =
          model.recognition_threshold.value_or(secondary->metadata()
                                                   .value("postprocess", nlohmann::json::object())
                                                   .value("recognition_threshold", 0.5f));
      try {
        galleries_by_model_[model.name] =
            std::make_shared<models::GalleryHolder>(*model.gallery, network, secondary, threshold);
      } catch (const Error& error) {
        fail("{}.gallery: {}", key, error.what());
      }
    }
    DetectorOptions detector_options{config_.preprocess, inference, config_.postprocess, context_threads,
                                     secondary != nullptr};
    auto detector =
        std::make_unique<Detector>(model, key, network, detector_options, [this](FrameTaskPtr task) {
          channels_[static_cast<std::size_t>(task->channel)]->deliver(std::move(task));
        });
    detector_by_name_[model.name] = detector.get();
    if (model.results_path) {
      auto& shared = results_by_path[*model.results_path];
      if (shared == nullptr) {
        results_files_.push_back(std::make_unique<ResultsFile>(*model.results_path, key + ".results_path"));
        shared = results_files_.back().get();
      }
      results_by_model_[model.name] = shared;
    }
    spdlog::info("model '{}': {} (stages {}, {}), {} inference thread(s) x {} oneDNN thread(s), ISA {}",
                 model.name, loaded.package_path, fmt::join(network->stage_batches(), ","),
                 network->precision(), inference.thread_num, context_threads, cpu_isa());
    detectors_.push_back(std::move(detector));
  }

  // Output directories for file outputs exist before the first frame (a bad path fails now, by key).
  for (std::size_t i = 0; i < config_.models.size(); ++i) {
    const auto& model = config_.models[i];
    if (model.ignored_output_path) {
      spdlog::info(
          "models[{}].output_path \"{}\" is neither a URL nor a file with an extension: no video output (as "
          "sophon-pipeline's placeholder)",
          i, *model.ignored_output_path);
    }
    if (!model.output_path || model.output_path->find("://") != std::string::npos) continue;
    const auto parent = std::filesystem::path(*model.output_path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    if (error)
      fail("models[{}].output_path: cannot create the folder '{}': {}", i, parent.string(), error.message());
    // The video files are created at their first packet; a folder that takes no file (a read-only mount)
    // or no bytes (a full disk) is found now, like an unwritable results_path, not after the run.
    const auto folder = parent.empty() ? std::filesystem::path(".") : parent;
    if (const std::string why = probe_folder_write(folder); !why.empty())
      fail("models[{}].output_path: cannot write into the folder '{}': {}", i, folder.string(), why);
  }

  if (config_.mosaic) {
    std::vector<int> tiles = config_.mosaic->channels;
    if (tiles.empty())
      for (const auto& channel : channels) tiles.push_back(channel.channel);
    mosaic_ = std::make_unique<Mosaic>(*config_.mosaic, std::move(tiles));
    if (config_.mosaic->from_demo) {
      spdlog::info(
          "{}: sophon-pipeline's video_stitch demo: {} channels composed 2x2 (add a \"mosaic\" key to "
          "choose)",
          kVideoStitchConfigName, channels.size());
    }
  }

  // Standby (cluster mode): the models above are loaded for the configured channels, which a cluster node
  // adds one by one as it claims them.
  const std::size_t started_channels = options_.standby ? 0 : channels.size();
  channel_capacity_ = started_channels + kMaxAddedChannels;
  channels_ = std::make_unique<std::unique_ptr<Channel>[]>(channel_capacity_);
  removing_.assign(channel_capacity_, false);
  for (const auto& channel : channels) {
    if (options_.standby) break;
    channels_[static_cast<std::size_t>(channel.channel)] =
        make_channel(channel.channel, channel.camera, channel.model, channels.size() > 1);
  }
  channel_count_.store(started_channels, std::memory_order_release);
}

std::shared_ptr<const Network> Pipeline::configured_secondary(
    const ModelConfig& model, const std::string& key, const Model& package,
    const std::shared_ptr<const Network>& detector) {
  const SecondaryConfig& wanted = *model.secondary;
  const std::string entry = key + ".secondary[0]";
  std::shared_ptr<const Network> network;
  const auto names = package.network_names();
  if (std::find(names.begin(), names.end(), wanted.model) != names.end()) {
    network = package.network(wanted.model);
  } else {
    const auto other = std::find_if(config_.models.begin(), config_.models.end(),
                                    [&](const ModelConfig& m) { return m.name == wanted.model; });
    if (other == config_.models.end() || other->name == model.name)
      fail("{}.model: \"{}\" is neither a network of '{}' (it holds {}) nor another entry of models[]", entry,
           wanted.model, model.path, fmt::join(names, ", "));
    const auto index = static_cast<std::size_t>(other - config_.models.begin());
    LoadedModel loaded = load_pipeline_model(other->path, fmt::format("models[{}].path", index),
                                             {.cache_dir = options_.cache_dir, .show_progress = false});
    for (const auto& name : loaded.model->network_names()) {
      auto candidate = loaded.model->network(name);
      if (models::SecondaryRunner::is_top_down(candidate->metadata())) {
        network = std::move(candidate);
        break;
      }
    }
    if (!network)
      fail("{}.model: models[{}] ('{}') has no network that runs on objects (metadata preprocess.crop)",
           entry, index, other->name);
  }
  // A runner made now checks the network and the classes against the detector before any channel starts.
  try {
    const models::SecondaryRunner probe(network,
                                        detector->metadata().value("class_names", std::vector<std::string>{}),
                                        {.threads = 1, .classes = wanted.classes});
  } catch (const Error& error) {
    fail("{}: {}", entry, error.what());
  }
  return network;
}

std::unique_ptr<Channel> Pipeline::make_channel(int id, const CameraConfig* camera, const ModelConfig* model,
                                                bool several_channels, std::string name) {
  ChannelSetup setup;
  setup.channel = id;
  setup.name = std::move(name);
  setup.address = camera->address;
  setup.camera = camera;
  setup.model = model;
  setup.detector = detector_by_name_.at(model->name);
  if (const auto it = secondary_by_model_.find(model->name); it != secondary_by_model_.end())
    setup.secondary = it->second;
  if (const auto it = galleries_by_model_.find(model->name); it != galleries_by_model_.end())
    setup.gallery = it->second;
  if (model->secondary) {
    setup.secondary_classes = model->secondary->classes;
    setup.secondary_max_objects = model->secondary->max_objects;
  }
  const auto results = results_by_model_.find(model->name);
  setup.results = results == results_by_model_.end() ? nullptr : results->second;
  setup.drop_when_full = is_network_address(camera->address) && !config_.preprocess.blocking;
  setup.encoder_threads = several_channels ? 1 : 0;
  setup.reconnect = options_.reconnect;
  Detector* detector = setup.detector;
  auto created = std::make_unique<Channel>(std::move(setup));
  if (mosaic_) {
    const auto& tiles = mosaic_->channels();
    if (const auto it = std::find(tiles.begin(), tiles.end(), id); it != tiles.end())
      created->add_tap(mosaic_->tile_tap(static_cast<std::size_t>(it - tiles.begin()), detector->labels()));
  }
  created->set_on_source_done([this] { wake_.notify_all(); });
  created->set_on_outputs_closed([this] { wake_.notify_all(); });
  return created;
}

Channel& Pipeline::channel_at(std::size_t channel) const {
  if (channel >= channel_count()) fail("pipeline: no channel {}", channel);
  return *channels_[channel];
}

Pipeline::~Pipeline() {
  request_stop();
  {
    std::lock_guard lock(channels_mutex_);
    draining_ = true;
  }
  const std::size_t count = channel_count();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->stop_source();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->join_source();
  for (auto& detector : detectors_) detector->close();
  for (auto& detector : detectors_) detector->join();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->finish_output();
  if (mosaic_) mosaic_->finish();
}

void Pipeline::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
}

void Pipeline::add_tap_factory(TapFactory factory) {
  std::lock_guard lock(channels_mutex_);
  if (started_) fail("Pipeline::add_tap_factory: the pipeline is already running");
  for (std::size_t i = 0; i < channel_count(); ++i) channels_[i]->add_tap(factory(channels_[i]->info()));
  tap_factories_.push_back(std::move(factory));
}

int Pipeline::add_channel(const ChannelRequest& request) {
  if (request.address.empty()) fail("address: must not be empty");
  const ModelConfig* model = config_.find_model(request.model);
  if (model == nullptr) fail("model: '{}' is not a model of the config", request.model);
  if (!has_model(request.model))
    fail("model: '{}' is not loaded (no configured channel uses it, so this run did not load it)",
         request.model);
  if (const auto problem = address_problem(request.address)) fail("address: {}", *problem);
  if (!is_network_address(request.address)) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(request.address, error))
      fail("address: '{}' is not a file", request.address);
  }
  std::unique_lock lock(channels_mutex_);
  if (draining_) fail("pipeline: the run is stopping; no channel can be added");
  const std::size_t id = channel_count();
  if (id >= channel_capacity_)
    fail("pipeline: this run has used all {} channel ids it can add", kMaxAddedChannels);
  CameraConfig& camera = added_cameras_.emplace_back();
  camera.address = request.address;
  camera.model_names = {request.model};
  camera.loop = request.loop;
  camera.pace = request.pace;
  camera.rtsp_transport = request.rtsp_transport;
  auto channel = make_channel(static_cast<int>(id), &camera, model, true, request.name);
  for (const auto& factory : tap_factories_) channel->add_tap(factory(channel->info()));
  // Published before it starts: the detector threads find its slot by id as soon as frames flow.
  channels_[id] = std::move(channel);
  channel_count_.store(id + 1, std::memory_order_release);
  if (started_) channels_[id]->start();
  spdlog::info("channel {} added ({}, model '{}')", id, channels_[id]->info().address, request.model);
  return static_cast<int>(id);
}

bool Pipeline::remove_channel(int channel) {
  {
    std::lock_guard lock(channels_mutex_);
    const auto id = static_cast<std::size_t>(channel);
    if (channel < 0 || id >= channel_count()) fail("pipeline: no channel {}", channel);
    if (!started_) fail("pipeline: channel {} cannot be removed before the run starts", channel);
    if (draining_) fail("pipeline: the run is stopping; every channel is draining already");
    if (removing_[id]) return false;
    removing_[id] = true;
    channels_[id]->stop_source();
  }
  spdlog::info("channel {}: removing (draining its frames)", channel);
  {
    std::lock_guard lock(mutex_);
    pending_removals_.push_back(channel);
  }
  wake_.notify_all();
  return true;
}

bool Pipeline::channel_removing(std::size_t channel) const {
  std::lock_guard lock(channels_mutex_);
  return channel < channel_count() && removing_[channel];
}

bool Pipeline::removal_ready() const {
  return std::any_of(pending_removals_.begin(), pending_removals_.end(),
                     [this](int id) { return channels_[static_cast<std::size_t>(id)]->outputs_closed(); });
}

// run()'s thread: a removed channel's source has stopped; its last frames go through the detector (which
// keeps serving the other channels) and its outputs; once they closed, its threads end here. Without
// `wait` only channels already drained are ended, so run() goes on printing statistics meanwhile.
void Pipeline::reap_removed_channels(bool wait) {
  std::vector<int> done;
  {
    std::lock_guard lock(mutex_);
    auto ready = [&](int id) { return wait || channels_[static_cast<std::size_t>(id)]->outputs_closed(); };
    for (const int id : pending_removals_)
      if (ready(id)) done.push_back(id);
    std::erase_if(pending_removals_, ready);
  }
  for (const int id : done) {
    Channel& channel = *channels_[static_cast<std::size_t>(id)];
    channel.join_source();
    channel.wait_outputs_closed();
    channel.finish_output();
    channel.mark_removed();
    detector_by_name_.at(channel.info().model)->forget_channel(id);
    spdlog::info("channel {} removed", id);
  }
}

RunSummary Pipeline::run() {
  const auto started = Clock::now();
  {
    std::lock_guard lock(channels_mutex_);
    started_ = true;
    for (auto& detector : detectors_) detector->start();
    for (std::size_t i = 0; i < channel_count(); ++i) channels_[i]->start();
    if (mosaic_) mosaic_->start();
  }

  const auto interval = std::chrono::milliseconds(config_.stats.interval_ms);
  auto next_tick = started + interval;
  const auto deadline = options_.duration ? started + *options_.duration : Clock::time_point::max();
  auto all_sources_done = [this] {
    if (options_.standby) return false;  // a cluster node runs until it is stopped, channels or none
    for (std::size_t i = 0; i < channel_count(); ++i)
      if (!channels_[i]->source_done()) return false;
    return true;
  };
  {
    std::unique_lock lock(mutex_);
    for (;;) {
      const auto wake_at = std::min(next_tick, deadline);
      wake_.wait_until(lock, wake_at,
                       [&] { return stop_requested_ || removal_ready() || all_sources_done(); });
      if (stop_requested_) {
        spdlog::info("stopping: draining {} channel(s)", channel_count());
        break;
      }
      if (removal_ready()) {
        lock.unlock();
        reap_removed_channels(false);
        lock.lock();
        continue;
      }
      if (all_sources_done()) {
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
  {
    std::lock_guard lock(channels_mutex_);
    draining_ = true;
  }
  reap_removed_channels(true);
  const std::size_t count = channel_count();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->stop_source();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->join_source();
  for (auto& detector : detectors_) detector->close();
  for (auto& detector : detectors_) detector->join();
  for (std::size_t i = 0; i < count; ++i) channels_[i]->finish_output();
  if (mosaic_) mosaic_->finish();  // after the channels: every tile has its last picture
  const double seconds = elapsed_ms(started) / 1000.0;
  return summarize(seconds);
}

void Pipeline::print_statistics(Clock::time_point now, bool final_table) {
  double total_fps = 0.0;
  std::vector<ChannelStats> rows;
  const std::size_t channels = channel_count();
  if (windows_.size() < channels) windows_.resize(channels);  // channels added since the last tick
  for (std::size_t i = 0; i < channels; ++i) {
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
      const auto [p50, p99] = c.recent_latency.percentiles(std::array<double, 2>{50, 99});
      row.latency_p50_ms = p50;
      row.latency_p99_ms = p99;
      rows.push_back(std::move(row));
    }
    w.inferred = inferred;
    w.output = output;
  }
  std::string text;
  if (options_.stats_line && channels > 0) {
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
  for (std::size_t i = 0; i < channel_count(); ++i) {
    const Channel* channel = channels_[i].get();
    const ChannelCounters& c = channel->counters();
    ChannelSummary row;
    row.channel = channel->id();
    row.address = channel->info().address;  // credentials redacted: the summary goes to the log
    row.state = to_string(channel->state());
    row.decoded = c.decoded.load();
    row.output = c.output.load();
    row.inferred = c.inferred.load();
    row.skipped = c.skipped.load();
    row.dropped = c.dropped.load();
    row.dropped_queue_full = c.dropped_queue_full.load();
    row.dropped_failed = c.dropped_failed.load();
    row.dropped_stale = c.dropped_stale.load();
    row.decode_errors = c.decode_errors.load();
    row.corrupt_frames = c.corrupt_frames.load();
    row.reconnects = c.reconnects.load();
    row.packets_written = c.packets_written.load();
    row.packets_dropped = c.packets_dropped.load();
    row.results_dropped = c.results_dropped.load();
    row.secondary_runs = c.secondary_runs.load();
    row.secondary_cached = c.secondary_cached.load();
    const auto [p50, p99] = c.recent_latency.percentiles(std::array<double, 2>{50, 99});
    row.latency_p50_ms = p50;
    row.latency_p99_ms = p99;
    summary.channels.push_back(std::move(row));
  }
  return summary;
}

}  // namespace vapipe::pipeline
