// Tracker: quality score, ids through motion, skipped frames, occlusion and crossings,
// embedding decisions, aggregation and identity events. Pure C++ (no model), so it runs
// under qemu in the ARM CI jobs too.
#include <cmath>
#include <vector>

#include "fastface/track.h"
#include "testing.h"

using namespace fastface;

namespace {

// A frontal face: the ArcFace template scaled to a side x side box at (x, y).
Face frontal_face(float x, float y, float side = 100.f) {
    Face f;
    f.x1 = x;
    f.y1 = y;
    f.x2 = x + side;
    f.y2 = y + side;
    f.score = 0.9f;
    for (int i = 0; i < 5; ++i)
        f.landmarks[i] = {x + kArcFaceTemplate112[i].x * side / 112.f, y + kArcFaceTemplate112[i].y * side / 112.f};
    return f;
}

// The same face with the nose moved sideways by `shift` of the eye distance (a turned head).
Face turned_face(float x, float y, float shift, float side = 100.f) {
    Face f = frontal_face(x, y, side);
    f.landmarks[2].x += shift * (f.landmarks[1].x - f.landmarks[0].x);
    return f;
}

std::vector<float> unit(std::size_t dim, std::size_t hot) {
    std::vector<float> v(dim, 0.f);
    v[hot] = 1.f;
    return v;
}

int count(const std::vector<TrackEvent>& events, TrackEventType type) {
    int n = 0;
    for (const TrackEvent& e : events) n += e.type == type;
    return n;
}

}  // namespace

TEST(quality_is_one_for_a_large_frontal_face_and_falls_with_yaw_pitch_and_size) {
    const float frontal = face_frontality(frontal_face(0, 0).landmarks);
    CHECK(frontal > 0.95f && frontal <= 1.f);
    CHECK_NEAR(face_quality(frontal_face(0, 0, 160), 80.f), frontal, 1e-6);
    CHECK_NEAR(face_quality(frontal_face(0, 0, 40), 80.f), 0.5 * frontal, 1e-5);  // size term 40 / 80
    float previous = frontal;
    for (float shift : {0.1f, 0.2f, 0.3f, 0.4f}) {  // turning further, lower every time
        const float q = face_frontality(turned_face(0, 0, shift).landmarks);
        CHECK(q < previous);
        previous = q;
    }
    CHECK(face_frontality(turned_face(0, 0, -0.25f).landmarks) < 0.7f * frontal);  // either side
    CHECK(face_frontality(turned_face(0, 0, 0.6f).landmarks) == 0.f);              // nose beyond the outline
    Face nodding = frontal_face(0, 0);
    nodding.landmarks[2].y += 12.f;  // nose towards the mouth: head tilted down
    CHECK(face_frontality(nodding.landmarks) < 0.6f * frontal);
    // In-plane roll does not matter (alignment removes it).
    Face rolled = frontal_face(0, 0);
    const float angle = 0.5f, c = std::cos(angle), s = std::sin(angle);
    for (Point2f& p : rolled.landmarks) p = {c * p.x - s * p.y + 300.f, s * p.x + c * p.y};
    CHECK_NEAR(face_frontality(rolled.landmarks), frontal, 1e-4);
    std::array<Point2f, 5> collapsed{};
    CHECK(face_frontality(collapsed) == 0.f);
    CHECK_THROWS(face_quality(frontal_face(0, 0), 0.f), ErrorCode::InvalidArgument);
}

TEST(tracker_keeps_ids_of_moving_faces_through_skipped_frames) {
    Tracker tracker;
    // Two faces moving 12 px per frame in opposite directions, detected every 3rd frame.
    for (int frame = 0; frame <= 30; ++frame) {
        const Face a = frontal_face(50.f + 12.f * frame, 50.f), b = frontal_face(500.f - 12.f * frame, 300.f);
        if (frame % 3 != 0) {
            tracker.predict(frame);
            CHECK(tracker.tracks().size() == 2);
            CHECK_NEAR(tracker.track(1).face.x1, a.x1, frame < 6 ? 40.0 : 0.5);  // velocity known after 2 rounds
            continue;
        }
        const std::vector<int> ids = tracker.update(frame, {a, b});
        CHECK(ids.size() == 2 && ids[0] == 1 && ids[1] == 2);
    }
    CHECK_NEAR(tracker.track(1).vx, 12.0, 1e-3);
    CHECK_NEAR(tracker.track(2).vx, -12.0, 1e-3);
    CHECK(tracker.tracks_started() == 2);
    const std::vector<TrackEvent> events = tracker.take_events();
    CHECK(count(events, TrackEventType::Started) == 2 && count(events, TrackEventType::Lost) == 0);
    CHECK(tracker.take_events().empty());
}

TEST(tracker_coasts_through_a_short_occlusion_and_drops_after_max_missed) {
    TrackerConfig config;
    config.max_missed = 8;
    Tracker tracker(config);
    for (int frame = 0; frame < 40; ++frame) {
        const Face face = frontal_face(20.f + 10.f * frame, 100.f);
        const bool hidden = frame >= 10 && frame < 17;  // 7 frames behind something
        tracker.update(frame, hidden ? std::vector<Face>{} : std::vector<Face>{face});
        CHECK(tracker.tracks().size() == 1 && tracker.tracks()[0].id == 1);
        if (hidden) CHECK_NEAR(tracker.tracks()[0].face.x1, face.x1, 1e-3);  // predicted where it is
        CHECK(tracker.tracks()[0].detected() == !hidden);
    }
    for (int frame = 40; frame <= 47; ++frame) tracker.update(frame, {});
    CHECK(tracker.tracks().size() == 1);  // missed 8 frames: still there
    tracker.predict(48);
    CHECK(tracker.tracks().empty());
    const std::vector<TrackEvent> events = tracker.take_events();
    CHECK(events.size() == 2 && events[1].type == TrackEventType::Lost && events[1].frame == 48);
}

TEST(tracker_does_not_swap_faces_that_cross) {
    TrackerConfig motion_only;  // no second-chance match: the prediction alone must carry face 2
    motion_only.distance_gate = 0.f;
    Tracker tracker(motion_only);
    // Face 1 moves right over face 2 moving left, on nearly the same row, 1 in front. While 2 is
    // partly covered its detected box is pulled towards its visible part; once mostly covered
    // it is not detected again until it is clear of face 1.
    for (int frame = 0; frame <= 40; ++frame) {
        const Face a = frontal_face(10.f + 10.f * frame, 100.f), b = frontal_face(410.f - 10.f * frame, 110.f);
        std::vector<Face> seen{a};
        const float covered = std::max(0.f, a.x2 - b.x1) / 100.f;  // of b's width, while a is left of b
        if (box_iou(a, b) == 0.f) {
            seen.push_back(b);
        } else if (b.x1 > a.x1 && covered < 0.4f) {
            Face visible_part = b;
            const float pull = 0.5f * covered * 100.f;
            visible_part.x1 += pull;
            visible_part.x2 += pull;
            seen.push_back(visible_part);
        }
        const std::vector<int> ids = tracker.update(frame, seen);
        CHECK(ids[0] == 1);
        if (seen.size() == 2) CHECK(ids[1] == 2);
    }
    CHECK(tracker.tracks_started() == 2);
}

TEST(tracker_gives_coasting_tracks_a_second_chance_by_distance) {
    // A face moves 10 px per frame, is hidden while it stops, and reappears 60 px short of its
    // prediction (IoU 0.25): the distance gate, wider after 6 missed frames, picks it up.
    for (float gate : {0.5f, 0.f}) {
        TrackerConfig config;
        config.distance_gate = gate;
        Tracker tracker(config);
        for (int frame = 0; frame <= 4; ++frame) tracker.update(frame, {frontal_face(10.f * frame, 0.f)});
        for (int frame = 5; frame < 10; ++frame) tracker.update(frame, {});
        const std::vector<int> ids = tracker.update(10, {frontal_face(40.f, 0.f)});
        CHECK(ids[0] == (gate > 0.f ? 1 : 2));
    }
    // Not for a face of a clearly different size, nor one beyond the gate.
    Tracker tracker;
    tracker.update(0, {frontal_face(0.f, 0.f)});
    CHECK(tracker.update(1, {frontal_face(60.f, 0.f, 40.f)})[0] == 2);
    CHECK(tracker.update(2, {frontal_face(0.f, 90.f)})[0] == 3);
}

TEST(tracker_embeds_new_tracks_then_only_better_views) {
    TrackerConfig config;
    config.reembed_gain = 0.1f;
    config.max_embeddings = 3;
    Tracker tracker(config);
    const std::vector<float> e = unit(4, 0);
    auto embed_round = [&](int frame, const Face& face) {
        tracker.update(frame, {face});
        const std::vector<int> wanted = tracker.embedding_wanted();
        for (int id : wanted) tracker.add_embedding(id, e.data(), e.size());
        return wanted.size();
    };
    CHECK(embed_round(0, turned_face(0, 0, 0.25f)) == 1);  // new track: embedded at once
    CHECK(embed_round(1, turned_face(1, 0, 0.25f)) == 0);  // same view
    CHECK(embed_round(2, turned_face(2, 0, 0.24f)) == 0);  // hardly better
    CHECK(embed_round(3, frontal_face(3, 0)) == 1);       // clearly better
    CHECK(embed_round(4, frontal_face(4, 0)) == 0);
    CHECK(tracker.track(1).embeddings == 2);
    // A tiny face is below min_quality: not embedded until it is seen large enough.
    TrackerConfig strict;
    strict.min_quality = 0.5f;
    Tracker far(strict);
    far.update(0, {frontal_face(0, 0, 20)});
    CHECK(far.embedding_wanted().empty());
    far.update(1, {frontal_face(0, 0, 22)});
    CHECK(far.embedding_wanted().empty());
    for (int frame = 2; frame < 12; ++frame) far.update(frame, {frontal_face(0, 0, 20.f + 10.f * frame)});
    CHECK(far.tracks().size() == 1 && far.embedding_wanted().size() == 1);
    // The cap holds even for a face that keeps getting better.
    TrackerConfig capped;
    capped.max_embeddings = 2;
    capped.reembed_gain = 0.f;
    Tracker growing(capped);
    int embedded = 0;
    for (int frame = 0; frame < 10; ++frame) {
        growing.update(frame, {frontal_face(0, 0, 30.f + 5.f * frame)});
        for (int id : growing.embedding_wanted()) {
            growing.add_embedding(id, e.data(), e.size());
            ++embedded;
        }
    }
    CHECK(embedded == 2);
}

TEST(tracker_aggregates_embeddings_weighted_by_quality) {
    Tracker tracker;
    tracker.update(0, {turned_face(0, 0, 0.3f)});
    const float q1 = tracker.track(1).quality;
    const std::vector<float> first = {2.f, 0.f, 0.f};  // normalized before averaging
    tracker.add_embedding(1, first.data(), 3);
    tracker.update(1, {frontal_face(1, 0)});
    const float q2 = tracker.track(1).quality;
    const std::vector<float> second = {0.f, 1.f, 0.f};
    const std::vector<float>& mean = tracker.add_embedding(1, second.data(), 3);
    const double norm = std::hypot(q1, q2);
    CHECK_NEAR(mean[0], q1 / norm, 1e-5);
    CHECK_NEAR(mean[1], q2 / norm, 1e-5);
    CHECK(mean[1] > mean[0]);
    const std::vector<float> wrong(4, 1.f), zero(3, 0.f);
    CHECK_THROWS(tracker.add_embedding(1, wrong.data(), 4), ErrorCode::InvalidArgument);
    CHECK_THROWS(tracker.add_embedding(1, zero.data(), 3), ErrorCode::InvalidArgument);
    CHECK_THROWS(tracker.add_embedding(7, second.data(), 3), ErrorCode::InvalidArgument);
}

TEST(tracker_reports_identified_changed_and_lost) {
    TrackerConfig config;
    config.max_missed = 2;
    Tracker tracker(config);
    tracker.update(0, {frontal_face(0, 0)});
    tracker.set_identity(1, "", 0.1f);     // unknown: no event
    tracker.set_identity(1, "ann", 0.6f);  // identified
    tracker.set_identity(1, "ann", 0.7f);  // same name: no event, score kept
    CHECK_NEAR(tracker.track(1).score, 0.7, 1e-6);
    tracker.set_identity(1, "bob", 0.5f);  // changed
    tracker.update(1, {frontal_face(400, 0)});
    for (int frame = 2; frame <= 4; ++frame) tracker.update(frame, {frontal_face(400, 0)});
    const std::vector<TrackEvent> events = tracker.take_events();
    CHECK(events.size() == 5);
    CHECK(events[0].type == TrackEventType::Started && events[0].track_id == 1);
    CHECK(events[1].type == TrackEventType::Identified && events[1].name == "ann" && events[1].score == 0.6f);
    CHECK(events[2].type == TrackEventType::IdentityChanged && events[2].name == "bob" && events[2].previous == "ann");
    CHECK(events[3].type == TrackEventType::Started && events[3].track_id == 2 && events[3].frame == 1);
    CHECK(events[4].type == TrackEventType::Lost && events[4].track_id == 1 && events[4].name == "bob" &&
          events[4].frame == 3);
    tracker.finish(9);
    const std::vector<TrackEvent> last = tracker.take_events();
    CHECK(last.size() == 1 && last[0].type == TrackEventType::Lost && last[0].track_id == 2 && last[0].frame == 9);
    CHECK(tracker.tracks().empty());
    CHECK(std::string(track_event_name(TrackEventType::IdentityChanged)) == "identity_changed");
}

TEST(tracker_rejects_bad_options_and_input) {
    const auto with = [](auto change) {
        TrackerConfig c;
        change(c);
        return c;
    };
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.iou_threshold = 0.f; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.iou_threshold = 1.5f; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.max_missed = -1; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.velocity_smoothing = 0.f; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.min_quality = NAN; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.reembed_gain = -0.1f; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.max_embeddings = -2; })), ErrorCode::InvalidArgument);
    CHECK_THROWS(Tracker(with([](TrackerConfig& c) { c.full_quality_size = 0.f; })), ErrorCode::InvalidArgument);
    Tracker tracker;
    tracker.update(5, {frontal_face(0, 0)});
    CHECK_THROWS(tracker.update(4, {}), ErrorCode::InvalidArgument);
    CHECK_THROWS(tracker.predict(3), ErrorCode::InvalidArgument);
    Face broken = frontal_face(0, 0);
    broken.landmarks[3].x = NAN;
    CHECK_THROWS(tracker.update(6, {broken}), ErrorCode::InvalidArgument);
    Face inverted = frontal_face(0, 0);
    inverted.x2 = inverted.x1 - 10.f;
    CHECK_THROWS(tracker.update(6, {inverted}), ErrorCode::InvalidArgument);
    CHECK_THROWS(tracker.set_identity(42, "x", 1.f), ErrorCode::InvalidArgument);
    CHECK_THROWS(tracker.track(42), ErrorCode::InvalidArgument);
}
