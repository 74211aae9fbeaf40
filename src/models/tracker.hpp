#pragma once
// Per-channel multi-object tracker, SORT-style (Bewley et al. 2016, with DeepSORT's track life cycle):
// a constant-velocity Kalman filter per track on (cx, cy, w, h), IoU matching solved as a minimum-cost
// assignment (models/linear_assignment.hpp), class-aware. One Tracker per channel; frames must be fed in order.
#include <cstdint>
#include <vector>

#include "models/detection.hpp"
#include "models/linear_assignment.hpp"

namespace vapipe::models {

struct TrackerOptions {
  // A confirmed track that went unmatched for more than max_age consecutive frames is deleted; an object that
  // is missing for max_age frames or fewer keeps its id when it comes back (on its predicted path).
  int max_age = 30;
  // Matched frames (the first included) before a track is confirmed and its detections get a track_id. A
  // track that misses a frame before being confirmed is deleted. 1 confirms on the first detection.
  int n_init = 3;
  // Minimum IoU between a track's predicted box and a detection for them to be matched.
  float iou_threshold = 0.3f;
};

class Tracker {
 public:
  // Throws vapipe::Error when max_age < 0, n_init < 1 or iou_threshold is outside [0, 1].
  explicit Tracker(TrackerOptions options = {});

  // Advances one frame with this frame's detections: sets track_id on each detection that belongs to a confirmed
  // track, -1 on the others. Boxes are left as the detector gave them. Ids start at 1 and are never reused.
  // A detection only matches a track of the same class_id. Deterministic: same inputs, same ids.
  void update(std::vector<Detection>& detections);

  // Drops every track (e.g. after a stream reconnect); ids keep counting up.
  void reset();

  // Tracks alive, tentative ones included.
  std::size_t num_tracks() const { return tracks_.size(); }
  std::size_t num_confirmed_tracks() const;

 private:
  // One coordinate with its velocity: the 8-state constant-velocity filter on (cx, cy, w, h) with diagonal
  // process and measurement noise splits exactly into four independent 2-state filters, which is what this is.
  struct Axis {
    double x = 0.0, v = 0.0;                 // state
    double p00 = 0.0, p01 = 0.0, p11 = 0.0;  // covariance (symmetric)
    void predict(double q_pos, double q_vel);
    void correct(double z, double r);
  };
  struct Track {
    Axis axes[4];  // cx, cy, w, h
    int class_id = 0;
    int hits = 0;
    int time_since_update = 0;
    bool confirmed = false;
    std::int64_t id = -1;  // assigned on confirmation
    void box(float& x1, float& y1, float& x2, float& y2) const;
  };

  void start_track(const Detection& detection);

  TrackerOptions options_;
  std::vector<Track> tracks_;
  std::int64_t next_id_ = 1;
  // Per-frame scratch, kept to avoid allocating once warmed up.
  std::vector<double> cost_;
  std::vector<int> track_to_detection_;
  std::vector<int> detection_to_track_;
  AssignmentScratch assignment_scratch_;
};

}  // namespace vapipe::models
