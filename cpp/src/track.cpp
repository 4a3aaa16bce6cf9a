#include "fastface/track.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "fastface/error.h"

namespace fastface {

namespace {

Face shifted(const Face& f, float dx, float dy) {
    Face out = f;
    out.x1 += dx;
    out.x2 += dx;
    out.y1 += dy;
    out.y2 += dy;
    for (Point2f& p : out.landmarks) p = {p.x + dx, p.y + dy};
    return out;
}

float centre_x(const Face& f) { return 0.5f * (f.x1 + f.x2); }
float centre_y(const Face& f) { return 0.5f * (f.y1 + f.y2); }

// min/max of two distances that should be equal on a frontal face; 0 when either is not positive.
float symmetry(float a, float b) {
    if (!(a > 0.f && b > 0.f)) return 0.f;
    return std::min(a, b) / std::max(a, b);
}

void check_config(const TrackerConfig& c) {
    const auto fail = [](const std::string& what) { throw Error(ErrorCode::InvalidArgument, what); };
    if (!(c.iou_threshold > 0.f && c.iou_threshold <= 1.f)) fail("iou_threshold must be in (0, 1]");
    if (!(c.distance_gate >= 0.f && c.distance_gate <= 10.f)) fail("distance_gate must be in [0, 10]");
    if (c.max_missed < 0) fail("max_missed must be >= 0");
    if (!(c.velocity_smoothing > 0.f && c.velocity_smoothing <= 1.f)) fail("velocity_smoothing must be in (0, 1]");
    if (!(c.full_quality_size > 0.f) || !std::isfinite(c.full_quality_size)) fail("full_quality_size must be > 0");
    if (!(c.min_quality >= 0.f && c.min_quality <= 1.f)) fail("min_quality must be in [0, 1]");
    if (!(c.reembed_gain >= 0.f && c.reembed_gain <= 1.f)) fail("reembed_gain must be in [0, 1]");
    if (c.max_embeddings < 0) fail("max_embeddings must be >= 0");
}

bool finite_face(const Face& f) {
    bool ok = std::isfinite(f.x1) && std::isfinite(f.y1) && std::isfinite(f.x2) && std::isfinite(f.y2) &&
              f.x2 >= f.x1 && f.y2 >= f.y1;
    for (const Point2f& p : f.landmarks) ok = ok && std::isfinite(p.x) && std::isfinite(p.y);
    return ok;
}

}  // namespace

float face_frontality(const std::array<Point2f, 5>& lm) {
    const Point2f left_eye = lm[0], right_eye = lm[1];
    const float ex = right_eye.x - left_eye.x, ey = right_eye.y - left_eye.y;
    const float eye_distance = std::hypot(ex, ey);
    if (!(eye_distance > 0.f)) return 0.f;
    // Rotate about the left eye so the eye line is horizontal, pointing to +x.
    const float c = ex / eye_distance, s = ey / eye_distance;
    std::array<Point2f, 5> p;
    for (int i = 0; i < 5; ++i) {
        const float dx = lm[i].x - left_eye.x, dy = lm[i].y - left_eye.y;
        p[i] = {c * dx + s * dy, -s * dx + c * dy};
    }
    const Point2f nose = p[2];
    const float left_midline = 0.5f * (p[0].x + p[3].x), right_midline = 0.5f * (p[1].x + p[4].x);
    const float eye_line = 0.5f * (p[0].y + p[1].y), mouth_line = 0.5f * (p[3].y + p[4].y);
    return symmetry(nose.x - left_midline, right_midline - nose.x) * symmetry(nose.y - eye_line, mouth_line - nose.y);
}

float face_quality(const Face& face, float full_quality_size) {
    if (!(full_quality_size > 0.f)) throw Error(ErrorCode::InvalidArgument, "full_quality_size must be > 0");
    const float side = std::min(face.x2 - face.x1, face.y2 - face.y1);
    const float size_term = std::clamp(side / full_quality_size, 0.f, 1.f);
    return size_term * face_frontality(face.landmarks);
}

const char* track_event_name(TrackEventType type) {
    switch (type) {
        case TrackEventType::Started: return "started";
        case TrackEventType::Identified: return "identified";
        case TrackEventType::IdentityChanged: return "identity_changed";
        case TrackEventType::Lost: return "lost";
    }
    return "unknown";
}

Tracker::Tracker(const TrackerConfig& config) : config_(config) { check_config(config_); }

void Tracker::advance(std::int64_t frame) {
    if (frame < frame_)
        throw Error(ErrorCode::InvalidArgument, "frames must not go backwards: got " + std::to_string(frame) +
                                                    " after " + std::to_string(frame_));
    frame_ = frame;
    for (Track& t : tracks_) {
        const float dt = static_cast<float>(frame - t.last_detection);
        t.face = shifted(t.detection, t.vx * dt, t.vy * dt);
        t.frame = frame;
    }
}

void Tracker::drop_stale() {
    auto stale = [&](const Track& t) { return t.missed() > config_.max_missed; };
    for (const Track& t : tracks_)
        if (stale(t)) events_.push_back({TrackEventType::Lost, t.id, frame_, t.name, "", t.score});
    tracks_.erase(std::remove_if(tracks_.begin(), tracks_.end(), stale), tracks_.end());
}

void Tracker::predict(std::int64_t frame) {
    advance(frame);
    drop_stale();
}

std::vector<int> Tracker::update(std::int64_t frame, const std::vector<Face>& detections) {
    for (const Face& d : detections)
        if (!finite_face(d)) throw Error(ErrorCode::InvalidArgument, "a detection has a non-finite or inverted box or landmarks");
    advance(frame);
    // Greedy matching, best IoU first: with a handful of faces it picks what the Hungarian
    // method would, and a face is never taken from the track that predicts it best.
    std::vector<std::tuple<float, std::size_t, std::size_t>> pairs;  // iou, track index, detection index
    for (std::size_t t = 0; t < tracks_.size(); ++t)
        for (std::size_t d = 0; d < detections.size(); ++d) {
            const float overlap = box_iou(tracks_[t].face, detections[d]);
            if (overlap >= config_.iou_threshold) pairs.emplace_back(overlap, t, d);
        }
    std::stable_sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::vector<int> ids(detections.size(), 0);
    std::vector<std::size_t> matched(tracks_.size(), kNone);  // detection index of each track
    const auto take = [&](std::size_t t, std::size_t d) {
        if (matched[t] != kNone || ids[d] != 0) return;
        matched[t] = d;
        ids[d] = tracks_[t].id;
    };
    for (const auto& [overlap, t, d] : pairs) take(t, d);
    // Second chance for tracks IoU left alone: the nearest detection within the distance gate.
    std::vector<std::tuple<float, std::size_t, std::size_t>> near;  // distance / gate, track, detection
    for (std::size_t t = 0; t < tracks_.size(); ++t) {
        if (matched[t] != kNone) continue;
        const Face& p = tracks_[t].face;
        const float width = p.x2 - p.x1;
        const float gate = width * (config_.distance_gate + 0.05f * static_cast<float>(tracks_[t].missed()));
        for (std::size_t d = 0; d < detections.size(); ++d) {
            if (ids[d] != 0) continue;
            const Face& q = detections[d];
            const float ratio = (q.x2 - q.x1) / std::max(width, 1e-3f);
            const float distance = std::hypot(centre_x(q) - centre_x(p), centre_y(q) - centre_y(p));
            if (gate > 0.f && distance <= gate && ratio >= 1.f / 1.5f && ratio <= 1.5f)
                near.emplace_back(distance / gate, t, d);
        }
    }
    std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
    for (const auto& [closeness, t, d] : near) take(t, d);
    for (std::size_t t = 0; t < tracks_.size(); ++t) {
        const std::size_t d = matched[t];
        if (d == kNone) continue;
        Track& track = tracks_[t];
        const Face& now = detections[d];
        // A face overlapping another is partly hidden: its box is off, so keep the old velocity.
        bool overlaps_another = false;
        for (std::size_t o = 0; o < detections.size(); ++o) overlaps_another |= o != d && box_iou(now, detections[o]) > 0.f;
        const float dt = static_cast<float>(frame - track.last_detection);
        if (dt > 0.f && !overlaps_another) {
            const float mvx = (centre_x(now) - centre_x(track.detection)) / dt;
            const float mvy = (centre_y(now) - centre_y(track.detection)) / dt;
            const float a = track.hits == 1 ? 1.f : config_.velocity_smoothing;  // first measurement: take it
            track.vx = a * mvx + (1.f - a) * track.vx;
            track.vy = a * mvy + (1.f - a) * track.vy;
        }
        track.detection = track.face = now;
        track.last_detection = frame;
        track.hits += 1;
        track.quality = face_quality(now, config_.full_quality_size);
    }
    for (std::size_t d = 0; d < detections.size(); ++d) {
        if (ids[d] != 0) continue;
        Track track;
        track.id = next_id_++;
        track.detection = track.face = detections[d];
        track.first_frame = track.last_detection = track.frame = frame;
        track.hits = 1;
        track.quality = face_quality(detections[d], config_.full_quality_size);
        ids[d] = track.id;
        tracks_.push_back(std::move(track));
        events_.push_back({TrackEventType::Started, ids[d], frame, "", "", 0.f});
    }
    drop_stale();
    return ids;
}

std::vector<int> Tracker::embedding_wanted() const {
    std::vector<int> ids;
    for (const Track& t : tracks_) {
        if (!t.detected() || t.quality < config_.min_quality) continue;
        if (config_.max_embeddings > 0 && t.embeddings >= config_.max_embeddings) continue;
        if (t.best_embedded_quality < 0.f || t.quality >= t.best_embedded_quality + config_.reembed_gain)
            ids.push_back(t.id);
    }
    return ids;
}

Track& Tracker::find(int id) {
    for (Track& t : tracks_)
        if (t.id == id) return t;
    throw Error(ErrorCode::InvalidArgument, "no live track with id " + std::to_string(id));
}

const Track& Tracker::track(int id) const { return const_cast<Tracker*>(this)->find(id); }

const std::vector<float>& Tracker::add_embedding(int id, const float* embedding, std::size_t dim) {
    Track& t = find(id);
    if (dim == 0) throw Error(ErrorCode::InvalidArgument, "empty embedding");
    if (!t.embedding_sum.empty() && t.embedding_sum.size() != dim)
        throw Error(ErrorCode::InvalidArgument, "embedding has " + std::to_string(dim) + " values, the track's earlier ones " +
                                                    std::to_string(t.embedding_sum.size()));
    double norm = 0;
    for (std::size_t i = 0; i < dim; ++i) norm += static_cast<double>(embedding[i]) * embedding[i];
    if (!(norm > 0) || !std::isfinite(norm)) throw Error(ErrorCode::InvalidArgument, "embedding is zero or not finite");
    // Better views count more; a tiny floor keeps a zero-quality view (min_quality = 0) in the mean.
    const double weight = std::max(t.quality, 1e-3f) / std::sqrt(norm);
    t.embedding_sum.resize(dim, 0.f);
    for (std::size_t i = 0; i < dim; ++i) t.embedding_sum[i] += static_cast<float>(weight * embedding[i]);
    double sum_norm = 0;
    for (float v : t.embedding_sum) sum_norm += static_cast<double>(v) * v;
    const double inv = sum_norm > 0 ? 1.0 / std::sqrt(sum_norm) : 0.0;
    t.embedding.resize(dim);
    for (std::size_t i = 0; i < dim; ++i) t.embedding[i] = static_cast<float>(t.embedding_sum[i] * inv);
    t.embeddings += 1;
    t.best_embedded_quality = std::max(t.best_embedded_quality, t.quality);
    return t.embedding;
}

void Tracker::set_identity(int id, const std::string& name, float score) {
    Track& t = find(id);
    t.score = score;
    if (name == t.name) return;
    events_.push_back({t.name.empty() ? TrackEventType::Identified : TrackEventType::IdentityChanged, id, frame_, name,
                       t.name, score});
    t.name = name;
}

void Tracker::finish(std::int64_t frame) {
    advance(std::max(frame, frame_));
    for (const Track& t : tracks_) events_.push_back({TrackEventType::Lost, t.id, frame_, t.name, "", t.score});
    tracks_.clear();
}

std::vector<TrackEvent> Tracker::take_events() {
    std::vector<TrackEvent> out;
    out.swap(events_);
    return out;
}

}  // namespace fastface
