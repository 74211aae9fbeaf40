// vapipe.Pipeline: `vapipe run` in a Python program. Results reach Python through a channel tap
// (pipeline/channel_tap.hpp) per channel: the channel's output thread copies the frame's record (and, when
// asked, its picture as BGR) into a bounded queue and never waits; a thread per channel takes the GIL and
// calls the callbacks in frame order. A full queue drops the new result (counted), so a slow callback costs
// its own results, never the video; a callback that raises is logged and counted and the next result goes
// on.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>

#include "core/bounded_queue.hpp"
#include "core/error.hpp"
#include "io/frame_view.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "python/bindings.hpp"

namespace vapipe::python {

namespace {

// One frame's result on its way from a channel's output thread to Python.
struct PendingResult {
  pipeline::FrameRecord record;  // its detections span points nowhere: they are in `detections`
  std::vector<models::Detection> detections;
  std::string json;
  std::vector<std::uint8_t> bgr;  // (height, width, 3) when frames were asked for
  int bgr_width = 0, bgr_height = 0;
};

// What a callback gets: a plain object of Python values.
struct PyResult {
  int channel = 0;
  std::int64_t frame = 0;
  std::int64_t pts = 0;
  double pts_seconds = -1.0;
  int width = 0, height = 0;
  bool inferred = true;
  py::list detections;
  py::object image = py::none();
  std::string json;
};

struct Callback {
  py::function function;
  bool frames = false;
};

// Set on the threads that call the callbacks: a callback that stops its pipeline must not wait for itself.
thread_local bool on_dispatch_thread = false;

class ChannelDispatch {
 public:
  ChannelDispatch(int channel, std::size_t capacity) : channel_(channel), queue_(capacity) {}

  BoundedQueue<PendingResult>& queue() { return queue_; }
  std::atomic<std::uint64_t> delivered{0}, raised{0}, dropped{0};
  std::thread thread;
  int channel() const { return channel_; }

 private:
  int channel_;
  BoundedQueue<PendingResult> queue_;
};

class PyPipeline;

class PythonTap : public pipeline::ChannelTap {
 public:
  PythonTap(std::shared_ptr<ChannelDispatch> dispatch, bool frames)
      : dispatch_(std::move(dispatch)), frames_(frames) {}
  ~PythonTap() override { dispatch_->queue().close(); }

  bool wants_pixels() const override { return frames_; }

  void frame_done(const pipeline::FrameRecord& record, std::string_view json_line,
                  const AVFrame* picture) override {
    PendingResult result;
    result.record = record;
    result.record.detections = {};
    result.detections.assign(record.detections.begin(), record.detections.end());
    result.json = json_line;
    if (frames_ && picture != nullptr) {
      const vision::ImageView view = viewer_.bgr(*picture);
      result.bgr_width = view.width;
      result.bgr_height = view.height;
      const auto row = static_cast<std::size_t>(view.width) * 3;
      result.bgr.resize(row * static_cast<std::size_t>(view.height));
      for (int y = 0; y < view.height; ++y)
        std::memcpy(result.bgr.data() + row * static_cast<std::size_t>(y),
                    view.planes[0] + view.strides[0] * y, row);
    }
    if (!dispatch_->queue().try_push(std::move(result))) dispatch_->dropped.fetch_add(1);
  }

  void closed() override { dispatch_->queue().close(); }

 private:
  std::shared_ptr<ChannelDispatch> dispatch_;
  bool frames_;
  io::FrameViewer viewer_;
};

class PyPipeline {
 public:
  PyPipeline(pipeline::PipelineConfig config, pipeline::RunOptions options) {
    pipeline_ = std::make_unique<pipeline::Pipeline>(std::move(config), options);
  }

  ~PyPipeline() {
    if (!started_) return;
    pipeline_->request_stop();
    py::gil_scoped_release release;
    finish();
  }

  void on_result(py::function callback, bool frames, std::size_t queue_size) {
    if (started_) fail("Pipeline.on_result: call it before start()");
    if (queue_size == 0) fail("Pipeline.on_result: queue_size must be at least 1");
    callbacks_.push_back({std::move(callback), frames});
    queue_size_ = std::max(queue_size_, queue_size);
  }

  void start() {
    if (started_) fail("Pipeline.start: already started");
    started_ = true;
    started_at_ = std::chrono::steady_clock::now();
    if (!callbacks_.empty()) {
      bool frames = false;
      for (const auto& c : callbacks_) frames = frames || c.frames;
      pipeline_->add_tap_factory([this, frames](const pipeline::ChannelInfo& info) {
        auto dispatch = std::make_shared<ChannelDispatch>(info.channel, queue_size_);
        {
          std::lock_guard lock(dispatch_mutex_);
          dispatches_[info.channel] = dispatch;
        }
        dispatch->thread =
            std::thread([this, dispatch, model = info.model] { dispatch_loop(*dispatch, model); });
        return std::make_shared<PythonTap>(dispatch, frames);
      });
    }
    runner_ = std::thread([this] {
      try {
        summary_ = pipeline_->run();
      } catch (...) {
        error_ = std::current_exception();
      }
      std::lock_guard lock(finished_mutex_);
      finished_ = true;
      finished_changed_.notify_all();
    });
  }

  // True when the run has ended (every thread joined), false when `timeout_s` passed first.
  bool wait(std::optional<double> timeout_s) {
    if (!started_) fail("Pipeline.wait: not started");
    {
      py::gil_scoped_release release;
      std::unique_lock lock(finished_mutex_);
      if (timeout_s) {
        if (!finished_changed_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, *timeout_s)),
                                        [&] { return finished_; }))
          return false;
      } else {
        finished_changed_.wait(lock, [&] { return finished_; });
      }
      lock.unlock();
      finish();
    }
    if (error_) std::rethrow_exception(error_);
    return true;
  }

  void stop() {
    if (!started_) return;
    pipeline_->request_stop();
    // A callback stopping its own pipeline: the run ends after it returns.
    if (on_dispatch_thread) return;
    wait(std::nullopt);
  }

  int add_channel(const std::string& address, const std::string& model, bool loop, bool pace,
                  const std::string& transport) {
    pipeline::ChannelRequest request;
    request.address = address;
    request.model = model;
    request.loop = loop;
    request.pace = pace;
    if (transport != "tcp" && transport != "udp") fail("rtsp_transport: '{}' must be tcp or udp", transport);
    request.rtsp_transport =
        transport == "udp" ? pipeline::RtspTransport::kUdp : pipeline::RtspTransport::kTcp;
    py::gil_scoped_release release;
    return pipeline_->add_channel(request);
  }

  bool remove_channel(int channel) {
    if (channel < 0 || static_cast<std::size_t>(channel) >= pipeline_->channel_count())
      fail("remove_channel: no channel {} (this run has {})", channel, pipeline_->channel_count());
    py::gil_scoped_release release;
    return pipeline_->remove_channel(channel);
  }

  py::dict stats() const {
    py::list channels;
    for (std::size_t c = 0; c < pipeline_->channel_count(); ++c) {
      const auto info = pipeline_->channel_info(c);
      const auto& counters = pipeline_->counters(c);
      py::dict item;
      item["channel"] = info.channel;
      item["name"] = info.name;
      item["model"] = info.model;
      item["address"] = info.address;
      item["state"] = std::string(pipeline::to_string(pipeline_->channel_state(c)));
      item["decoded"] = counters.decoded.load();
      item["output"] = counters.output.load();
      item["inferred"] = counters.inferred.load();
      item["skipped"] = counters.skipped.load();
      item["dropped"] = counters.dropped.load();
      item["decode_errors"] = counters.decode_errors.load();
      item["reconnects"] = counters.reconnects.load();
      std::shared_ptr<ChannelDispatch> dispatch;
      {
        std::lock_guard lock(dispatch_mutex_);
        if (const auto it = dispatches_.find(info.channel); it != dispatches_.end()) dispatch = it->second;
      }
      item["callbacks"] = dispatch ? dispatch->delivered.load() : 0;
      item["callback_errors"] = dispatch ? dispatch->raised.load() : 0;
      item["callback_drops"] = dispatch ? dispatch->dropped.load() : 0;
      channels.append(std::move(item));
    }
    py::dict result;
    result["seconds"] =
        started_ ? std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count()
                 : 0.0;
    result["running"] = started_ && !finished_flag();
    result["channels"] = std::move(channels);
    return result;
  }

  std::size_t channel_count() const { return pipeline_->channel_count(); }

 private:
  bool finished_flag() const {
    std::lock_guard lock(finished_mutex_);
    return finished_;
  }

  // Without the GIL: joins the run and the callback threads (each drains its queue first).
  void finish() {
    if (runner_.joinable()) runner_.join();
    std::map<int, std::shared_ptr<ChannelDispatch>> dispatches;
    {
      std::lock_guard lock(dispatch_mutex_);
      dispatches = dispatches_;
    }
    for (auto& [channel, dispatch] : dispatches) {
      dispatch->queue().close();
      if (dispatch->thread.joinable()) dispatch->thread.join();
    }
  }

  void dispatch_loop(ChannelDispatch& dispatch, const std::string& model) {
    on_dispatch_thread = true;
    std::vector<std::string> labels;
    if (const auto* post = pipeline_->labels(model))
      for (int c = 0; c < post->num_classes(); ++c) labels.push_back(post->label(c));
    while (auto pending = dispatch.queue().pop()) {
      py::gil_scoped_acquire gil;
      try {
        deliver(*pending, labels, dispatch);
      } catch (const std::exception& error) {
        // Building the result failed (memory): that result is lost, the channel's next one goes on.
        dispatch.raised.fetch_add(1);
        spdlog::error("vapipe.Pipeline: channel {}: a result could not be delivered: {}", dispatch.channel(),
                      error.what());
      }
    }
  }

  void deliver(PendingResult& pending, const std::vector<std::string>& labels, ChannelDispatch& dispatch) {
    PyResult result;
    result.channel = pending.record.channel;
    result.frame = pending.record.frame;
    result.pts = pending.record.pts;
    result.pts_seconds = pending.record.pts_seconds;
    result.width = pending.record.width;
    result.height = pending.record.height;
    result.inferred = pending.record.inferred;
    result.detections = to_python(std::move(pending.detections), labels);
    result.json = std::move(pending.json);
    if (!pending.bgr.empty()) {
      // The pixels move into the array's owner: no copy.
      auto owned = std::make_unique<std::vector<std::uint8_t>>(std::move(pending.bgr));
      auto* pixels = owned.get();
      py::capsule owner(owned.release(), [](void* p) { delete static_cast<std::vector<std::uint8_t>*>(p); });
      result.image =
          py::array_t<std::uint8_t>({pending.bgr_height, pending.bgr_width, 3}, pixels->data(), owner);
    }
    py::object object = py::cast(std::move(result));
    for (const auto& callback : callbacks_) {
      if (!callback.frames && !object.attr("image").is_none()) {
        // A callback that did not ask for pixels gets none (another callback did).
        py::object copy = py::module_::import("copy").attr("copy")(object);
        copy.attr("image") = py::none();
        call(callback.function, copy, dispatch);
      } else {
        call(callback.function, object, dispatch);
      }
    }
    dispatch.delivered.fetch_add(1);
  }

  static void call(const py::function& function, const py::object& result, ChannelDispatch& dispatch) {
    try {
      function(result);
    } catch (py::error_already_set& error) {
      const auto count = dispatch.raised.fetch_add(1) + 1;
      // The first errors in full, then every 100th: a callback failing on every frame must not flood the log.
      if (count <= 3 || count % 100 == 0)
        spdlog::error("vapipe.Pipeline: channel {}: the on_result callback raised ({} so far): {}",
                      dispatch.channel(), count, error.what());
    }
  }

  std::unique_ptr<pipeline::Pipeline> pipeline_;
  std::vector<Callback> callbacks_;
  std::size_t queue_size_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point started_at_;
  std::thread runner_;
  std::optional<pipeline::RunSummary> summary_;
  std::exception_ptr error_;
  mutable std::mutex finished_mutex_;
  std::condition_variable finished_changed_;
  bool finished_ = false;
  mutable std::mutex dispatch_mutex_;
  std::map<int, std::shared_ptr<ChannelDispatch>> dispatches_;
};

pipeline::PipelineConfig config_of(const py::object& config) {
  if (py::isinstance<py::dict>(config)) {
    const std::string text = py::module_::import("json").attr("dumps")(config).cast<std::string>();
    return pipeline::parse_config(text, "<dict>");
  }
  return pipeline::load_config(path_of(config, "Pipeline config"));
}

}  // namespace

void bind_pipeline(py::module_& m) {
  py::class_<PyResult>(m, "Result", "One frame's results, handed to Pipeline.on_result callbacks")
      .def_readonly("channel", &PyResult::channel)
      .def_readonly("frame", &PyResult::frame)
      .def_readonly("pts", &PyResult::pts)
      .def_readonly("pts_seconds", &PyResult::pts_seconds)
      .def_readonly("width", &PyResult::width)
      .def_readonly("height", &PyResult::height)
      .def_readonly("inferred", &PyResult::inferred)
      .def_readonly("detections", &PyResult::detections)
      .def_readwrite("image", &PyResult::image)
      .def_readonly("json", &PyResult::json)
      .def("__copy__", [](const PyResult& r) { return PyResult(r); });

  py::class_<PyPipeline>(m, "Pipeline", "The video pipeline of a config (`vapipe run`)")
      .def(py::init([](const py::object& config, const py::object& cache_dir, int threads,
                       std::optional<double> duration_s, bool stats) {
             pipeline::PipelineConfig parsed = config_of(config);
             pipeline::RunOptions options;
             options.stats_line = stats;
             options.stats_out = stderr;
             if (!cache_dir.is_none()) options.cache_dir = path_of(cache_dir, "Pipeline cache_dir");
             if (threads < 0 || threads > max_threads())
               fail("Pipeline: threads {} must be 0 to {}", threads, max_threads());
             options.context_threads = threads;
             if (duration_s && *duration_s > 0)
               options.duration = std::chrono::milliseconds(static_cast<std::int64_t>(*duration_s * 1000.0));
             py::gil_scoped_release release;
             return std::make_unique<PyPipeline>(std::move(parsed), options);
           }),
           py::arg("config"), py::kw_only(), py::arg("cache_dir") = py::none(), py::arg("threads") = 0,
           py::arg("duration") = py::none(), py::arg("stats") = false)
      .def("on_result", &PyPipeline::on_result, py::arg("callback"), py::kw_only(), py::arg("frames") = false,
           py::arg("queue_size") = 64)
      .def("start", &PyPipeline::start)
      .def("wait", &PyPipeline::wait, py::arg("timeout") = py::none())
      .def("stop", &PyPipeline::stop)
      .def("add_channel", &PyPipeline::add_channel, py::arg("address"), py::arg("model"), py::kw_only(),
           py::arg("loop") = true, py::arg("pace") = true, py::arg("rtsp_transport") = "tcp")
      .def("remove_channel", &PyPipeline::remove_channel, py::arg("channel"))
      .def("stats", &PyPipeline::stats)
      .def_property_readonly("channel_count", &PyPipeline::channel_count)
      .def("__enter__",
           [](py::object self) {
             auto& p = self.cast<PyPipeline&>();
             p.start();
             return self;
           })
      .def("__exit__", [](PyPipeline& p, const py::args&) { p.stop(); });
}

}  // namespace vapipe::python
