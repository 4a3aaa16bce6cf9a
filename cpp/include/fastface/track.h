// Face tracking for video: detections in, stable track ids, "embed this face now" decisions,
// per-track embedding aggregation and identity events out. The caller runs the detector and
// the embedder (and searches its gallery); the tracker decides when they are worth running.
//
// Motion model: IoU matching against a constant-velocity prediction, with the velocity
// smoothed exponentially (an alpha-beta filter, i.e. a steady-state Kalman filter without the
// covariance bookkeeping). Face detections are precise and frames are evenly spaced, so a full
// Kalman filter (SORT) buys little here; what matters is coasting a track through a short
// occlusion or a skipped detection frame, which the prediction does. Two details carry tracks
// through people crossing: a face's velocity is not updated from a detection that overlaps
// another face (a half-hidden face's box is pulled towards its visible part), and tracks left
// without a detection by IoU get a second chance by centre distance, with a gate that widens
// the longer they have coasted (what a Kalman filter's growing covariance would do).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fastface/detector.h"

namespace fastface {

// How frontal a face looks from its 5 landmarks, in [0, 1] (1 = frontal). The landmarks are
// first rotated so the eyes are level (in-plane roll does not matter: alignment undoes it);
// then yaw symmetry = min(l, r) / max(l, r), with l and r the horizontal distances from the
// nose tip to the left and right eye/mouth-corner midlines, and pitch symmetry the same ratio
// of the nose's vertical distances to the eye line and the mouth line. Frontality is their
// product; a nose outside the face's outline gives 0.
float face_frontality(const std::array<Point2f, 5>& landmarks);

// Recognition quality of a detected face, in [0, 1]: size term x frontality, where the size
// term is min(1, shorter box side / full_quality_size): below that size a face loses detail
// the recognizer needs.
float face_quality(const Face& face, float full_quality_size = 80.f);

struct TrackerConfig {
    float iou_threshold = 0.3f;       // least IoU between a track's predicted box and a detection
    // Second-stage match: centre distance at most this many track box widths, plus 5% of the
    // width per frame without detection; sizes within a factor 1.5.
    float distance_gate = 0.5f;
    int max_missed = 15;              // frames a track survives without a detection, then lost
    float velocity_smoothing = 0.5f;  // weight of the newest velocity measurement, (0, 1]
    float full_quality_size = 80.f;   // see face_quality
    float min_quality = 0.2f;         // views below this quality are never embedded, [0, 1]
    float reembed_gain = 0.15f;       // embed again when a view beats the best embedded one by this
    int max_embeddings = 5;           // per track; 0 = no limit
};

enum class TrackEventType {
    Started,          // a new face: name empty
    Identified,       // an unnamed track got a name (name, score)
    IdentityChanged,  // a named track's name changed (previous -> name; name empty = unknown now)
    Lost,             // no detection for more than max_missed frames, or finish(); name = its last one
};

const char* track_event_name(TrackEventType type);  // "started", "identified", ...

struct TrackEvent {
    TrackEventType type;
    int track_id = 0;
    std::int64_t frame = 0;
    std::string name;
    std::string previous;
    float score = 0.f;
};

struct Track {
    int id = 0;
    Face face;                       // where the face is on `frame`: `detection` moved by the velocity
    Face detection;                  // the latest matched detection (on frame last_detection)
    float vx = 0.f, vy = 0.f;        // box centre velocity, pixels per frame
    std::int64_t first_frame = 0;
    std::int64_t last_detection = 0;  // frame of the latest matched detection
    std::int64_t frame = 0;           // frame `face` is predicted for
    int hits = 0;                     // detections matched so far
    float quality = 0.f;              // face_quality of the latest detection
    float best_embedded_quality = -1.f;  // -1: not embedded yet
    int embeddings = 0;
    std::vector<float> embedding;     // quality-weighted mean of its embeddings, L2-normalized
    std::vector<float> embedding_sum;  // the weighted sum behind it
    std::string name;                 // "" = not identified
    float score = 0.f;                // gallery score behind `name` (or the best one below threshold)

    int missed() const { return static_cast<int>(frame - last_detection); }
    bool detected() const { return frame == last_detection; }  // matched on its latest frame
};

// Not thread-safe: one Tracker per video stream.
class Tracker {
public:
    explicit Tracker(const TrackerConfig& config = {});  // InvalidArgument for options out of range

    // One detection round on `frame` (frames never go backwards): predicts every track to
    // `frame`, matches detections to tracks greedily by IoU (best pairs first), starts a track
    // for each unmatched detection and drops tracks missed for more than max_missed frames.
    // Returns the track id of each detection, in order.
    std::vector<int> update(std::int64_t frame, const std::vector<Face>& detections);

    // A frame without detection: tracks move by their velocity; stale ones are lost.
    void predict(std::int64_t frame);

    // Ids of tracks detected on the latest frame whose view is worth embedding: the first one
    // of at least min_quality, then only views beating the best embedded quality by
    // reembed_gain, at most max_embeddings per track.
    std::vector<int> embedding_wanted() const;

    // Adds the embedding of track `id`'s latest view (weighted by its quality) and returns the
    // track's aggregate. All embeddings must have the same size.
    const std::vector<float>& add_embedding(int id, const float* embedding, std::size_t dim);

    // The identity a gallery search gave the track's aggregate ("" = below threshold);
    // emits Identified / IdentityChanged when the name changes.
    void set_identity(int id, const std::string& name, float score);

    // The stream is over: every track is lost on `frame`.
    void finish(std::int64_t frame);

    // Events since the last call, in order.
    std::vector<TrackEvent> take_events();

    const std::vector<Track>& tracks() const { return tracks_; }
    const Track& track(int id) const;  // InvalidArgument for an unknown id
    const TrackerConfig& config() const { return config_; }
    int tracks_started() const { return next_id_ - 1; }

private:
    Track& find(int id);
    void advance(std::int64_t frame);
    void drop_stale();

    TrackerConfig config_;
    std::vector<Track> tracks_;
    std::vector<TrackEvent> events_;
    std::int64_t frame_ = -1;
    int next_id_ = 1;
};

}  // namespace fastface
