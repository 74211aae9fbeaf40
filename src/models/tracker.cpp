#include "models/tracker.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace vapipe::models {
namespace {

// Noise scaled with the box height, as in DeepSORT: a box twice as large moves and jitters twice as many pixels.
constexpr double kStdPosition = 1.0 / 20.0;
constexpr double kStdVelocity = 1.0 / 160.0;
// Cost given to a pair that must not match (other class or IoU below the threshold). Any value above the
// largest possible number of pairs (each real cost is <= 1) makes the solver prefer more real matches.
constexpr double kForbidden = 1e6;

float iou(float ax1, float ay1, float ax2, float ay2, const Detection& b) {
  const float iw = std::min(ax2, b.x2) - std::max(ax1, b.x1);
  const float ih = std::min(ay2, b.y2) - std::max(ay1, b.y1);
  if (iw <= 0.0f || ih <= 0.0f) return 0.0f;
  const float inter = iw * ih;
  const float uni = (ax2 - ax1) * (ay2 - ay1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return uni > 0.0f ? inter / uni : 0.0f;
}

// The filter's measurement (cx, cy, w, h) of a corner box.
void measure(const Detection& d, double (&z)[4]) {
  const double x1 = d.x1, y1 = d.y1, x2 = d.x2, y2 = d.y2;
  z[0] = (x1 + x2) / 2.0;
  z[1] = (y1 + y2) / 2.0;
  z[2] = x2 - x1;
  z[3] = y2 - y1;
}

}  // namespace

void Tracker::Axis::predict(double q_pos, double q_vel) {
  // F = [1 1; 0 1]: P = F P F^T + Q.
  x += v;
  p00 += 2.0 * p01 + p11 + q_pos;
  p01 += p11;
  p11 += q_vel;
}

void Tracker::Axis::correct(double z, double r) {
  // H = [1 0].
  const double s = p00 + r;
  const double k0 = p00 / s;
  const double k1 = p01 / s;
  const double innovation = z - x;
  x += k0 * innovation;
  v += k1 * innovation;
  const double n00 = (1.0 - k0) * p00;
  const double n01 = (1.0 - k0) * p01;
  const double n11 = p11 - k1 * p01;
  p00 = n00;
  p01 = n01;
  p11 = n11;
}

void Tracker::Track::box(float& x1, float& y1, float& x2, float& y2) const {
  const double w = std::max(axes[2].x, 0.0);
  const double h = std::max(axes[3].x, 0.0);
  x1 = static_cast<float>(axes[0].x - w / 2.0);
  y1 = static_cast<float>(axes[1].x - h / 2.0);
  x2 = static_cast<float>(axes[0].x + w / 2.0);
  y2 = static_cast<float>(axes[1].x + h / 2.0);
}

Tracker::Tracker(TrackerOptions options) : options_(options) {
  if (options_.max_age < 0) fail("tracker: max_age must be >= 0, got {}", options_.max_age);
  if (options_.n_init < 1) fail("tracker: n_init must be >= 1, got {}", options_.n_init);
  if (!(options_.iou_threshold >= 0.0f && options_.iou_threshold <= 1.0f)) {
    fail("tracker: iou_threshold must be in [0, 1], got {}", options_.iou_threshold);
  }
}

std::size_t Tracker::num_confirmed_tracks() const {
  return static_cast<std::size_t>(
      std::count_if(tracks_.begin(), tracks_.end(), [](const Track& t) { return t.confirmed; }));
}

void Tracker::reset() { tracks_.clear(); }

void Tracker::start_track(const Detection& d) {
  Track track;
  double z[4];
  measure(d, z);
  const double scale = std::max(z[3], 1.0);
  for (int i = 0; i < 4; ++i) {
    Axis& axis = track.axes[i];
    axis.x = z[i];
    axis.v = 0.0;
    // Position known to the measurement's precision, velocity unknown (DeepSORT's initial covariance).
    axis.p00 = std::pow(2.0 * kStdPosition * scale, 2);
    axis.p01 = 0.0;
    axis.p11 = std::pow(10.0 * kStdVelocity * scale, 2);
  }
  track.class_id = d.class_id;
  track.hits = 1;
  track.time_since_update = 0;
  if (options_.n_init <= 1) {
    track.confirmed = true;
    track.id = next_id_++;
  }
  tracks_.push_back(track);
}

void Tracker::update(std::vector<Detection>& detections) {
  // 1. Predict every track one frame ahead.
  for (Track& track : tracks_) {
    const double scale = std::max(track.axes[3].x, 1.0);
    const double q_pos = std::pow(kStdPosition * scale, 2);
    const double q_vel = std::pow(kStdVelocity * scale, 2);
    for (Axis& axis : track.axes) axis.predict(q_pos, q_vel);
    ++track.time_since_update;
  }

  // 2. Match predicted boxes to detections: cost 1 - IoU, forbidden across classes or below the threshold.
  const auto num_tracks = tracks_.size();
  const auto num_detections = detections.size();
  cost_.resize(num_tracks * num_detections);
  for (std::size_t t = 0; t < num_tracks; ++t) {
    float x1, y1, x2, y2;
    tracks_[t].box(x1, y1, x2, y2);
    for (std::size_t d = 0; d < num_detections; ++d) {
      const Detection& det = detections[d];
      const float overlap = det.class_id == tracks_[t].class_id ? iou(x1, y1, x2, y2, det) : 0.0f;
      const bool allowed = overlap > 0.0f && overlap >= options_.iou_threshold;
      cost_[t * num_detections + d] = allowed ? 1.0 - static_cast<double>(overlap) : kForbidden;
    }
  }
  solve_assignment(cost_, static_cast<int>(num_tracks), static_cast<int>(num_detections), track_to_detection_,
                   assignment_scratch_);
  detection_to_track_.assign(num_detections, -1);
  for (std::size_t t = 0; t < num_tracks; ++t) {
    const int d = track_to_detection_[t];
    if (d < 0) continue;
    if (cost_[t * num_detections + static_cast<std::size_t>(d)] >= kForbidden) {
      track_to_detection_[t] = -1;
      continue;
    }
    detection_to_track_[static_cast<std::size_t>(d)] = static_cast<int>(t);
  }

  // 3. Correct matched tracks with their detection.
  for (std::size_t t = 0; t < num_tracks; ++t) {
    const int d = track_to_detection_[t];
    if (d < 0) continue;
    Track& track = tracks_[t];
    const Detection& det = detections[static_cast<std::size_t>(d)];
    double z[4];
    measure(det, z);
    const double r = std::pow(kStdPosition * std::max(track.axes[3].x, 1.0), 2);
    for (int i = 0; i < 4; ++i) track.axes[i].correct(z[i], r);
    track.time_since_update = 0;
    ++track.hits;
    if (!track.confirmed && track.hits >= options_.n_init) {
      track.confirmed = true;
      track.id = next_id_++;
    }
  }
  for (std::size_t d = 0; d < num_detections; ++d) {
    const int t = detection_to_track_[d];
    detections[d].track_id = t >= 0 && tracks_[static_cast<std::size_t>(t)].confirmed
                                 ? static_cast<int>(tracks_[static_cast<std::size_t>(t)].id)
                                 : -1;
  }

  // 4. Delete lost tracks (tentative ones on their first miss), then start tracks for unmatched detections.
  std::erase_if(tracks_, [&](const Track& track) {
    if (track.time_since_update == 0) return false;
    return !track.confirmed || track.time_since_update > options_.max_age;
  });
  for (std::size_t d = 0; d < num_detections; ++d) {
    if (detection_to_track_[d] >= 0) continue;
    start_track(detections[d]);
    if (tracks_.back().confirmed) detections[d].track_id = static_cast<int>(tracks_.back().id);
  }
}

}  // namespace vapipe::models
