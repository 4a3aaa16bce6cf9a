"""fastface.Stream and fastface watch on synthetic videos made from the shared photos: stable
track ids, right names, no switch when people cross, few embeddings per track; bad sources,
bad frames and bad options."""
import json
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

import fastface
from shared_data import (DEEPFACE, DEEPFACE_IDENTITIES, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM,
                         require)
from synthetic_video import Actor, Scene, linear, make_sprite

pytestmark = [require(RETINAFACE_PARAM), require(MOBILEFACENET), require(DEEPFACE)]
WIDTH, HEIGHT, SPRITE = 320, 240, 112
CAST = {"a": "img2.jpg", "b": "img12.jpg", "c": "img14.jpg"}  # not the photos enrolled in the gallery


@pytest.fixture(scope="module")
def analyzer():
    # max_side 320: the small test frames are detected at their own size.
    return fastface.FaceAnalyzer(fastface.Detector(RETINAFACE_PARAM, max_side=320),
                                 fastface.Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD))


@pytest.fixture(scope="module")
def gallery(analyzer):
    """Every identity's first photo."""
    gallery = fastface.Gallery(analyzer.embedder.dim)
    for name, photos in DEEPFACE_IDENTITIES.items():
        gallery.add(name, analyzer.analyze(cv2.imread(str(DEEPFACE / photos[0])))[0].embedding)
    return gallery


@pytest.fixture(scope="module")
def sprites(analyzer):
    return {name: make_sprite(analyzer.detector, photo, SPRITE) for name, photo in CAST.items()}


def actor(sprites, name, path):
    return Actor(name, *sprites[name], path)


@pytest.fixture(scope="module")
def walk(sprites):
    """One person enters on the left, is hidden by something passing in front for 6 frames and
    leaves on the right; another stands still for the first half, then leaves."""
    return Scene(WIDTH, HEIGHT, 48, [actor(sprites, "c", linear((200, 125), (0, 0), last=24)),
                                     actor(sprites, "a", linear((-70, 20), (8, 0.5)))],
                 occluders=[(20, 26, (105, 0, 222, 130))])


@pytest.fixture(scope="module")
def crossing(sprites):
    """Two people walk past each other on nearly the same line, "b" in front: "a" is hidden
    behind "b" for several frames."""
    return Scene(WIDTH, HEIGHT, 36, [actor(sprites, "a", linear((230, 60), (-6, 0))),
                                     actor(sprites, "b", linear((-20, 70), (6, 0)))])


def run(scene, analyzer, gallery, **options):
    """Events, per-frame tracks and stats of a Stream over ``scene``."""
    stream = fastface.Stream(iter(scene), analyzer, gallery, **options)
    frames = list(stream.frames())
    events = [e for f in frames for e in f.events]
    return events, frames[:-1], stream.stats


def check_tracks(scene, events, frames, expected: dict):
    """Each person: one track id, named right, never renamed; and that id follows the person."""
    started = [e.track_id for e in events if e.kind == "started"]
    named = {e.track_id: e.name for e in events if e.kind == "identified"}
    assert len(started) == len(expected), [e.to_dict() for e in events]
    assert sorted(named.values()) == sorted(expected), named
    assert not [e for e in events if e.kind == "identity_changed"]
    ids = {name: track_id for track_id, name in named.items()}
    truth = scene.truth()
    for result in frames:
        for name, box in truth[result.index].items():
            best = max(result.tracks, key=lambda t: _iou(t.bbox, box), default=None)
            assert best is not None and _iou(best.bbox, box) > 0.3, (result.index, name)
            assert best.id == ids[name], (result.index, name, best.id, ids)
    lost = {e.track_id for e in events if e.kind == "lost"}
    assert lost == set(started) and events[-1].kind == "end"


def _iou(a, b):
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_walk_enter_occlusion_leave(walk, analyzer, gallery):
    events, frames, stats = run(walk, analyzer, gallery)
    check_tracks(walk, events, frames, {"a", "c"})
    assert stats.embeddings_per_track <= 3, stats
    assert stats.frames_processed == walk.frames and stats.frames_dropped == 0
    # "c" leaves at frame 25 and is lost 15 frames later; "a" is lost at the end of the video.
    lost = {e.name: e.frame for e in events if e.kind == "lost"}
    assert lost["c"] == 25 + 15 and lost["a"] == walk.frames - 1
    coasting = [t for f in frames if 21 <= f.index <= 24 for t in f.tracks if t.name == "a"]
    assert coasting and not any(t.detected for t in coasting)  # behind the pillar: predicted


def test_crossing_keeps_identities(crossing, analyzer, gallery):
    events, frames, stats = run(crossing, analyzer, gallery)
    check_tracks(crossing, events, frames, {"a", "b"})
    assert stats.embeddings_per_track <= 3, stats
    hidden = [f.index for f in frames if "a" not in crossing.render(f.index)[1]]
    assert hidden, "the scene should hide a behind b for some frames"


def test_detect_every_third_frame_on_a_downscaled_frame(crossing, analyzer, gallery):
    events, frames, stats = run(crossing, analyzer, gallery, detect_every=3, detect_scale=0.75, max_missed=15)
    check_tracks(crossing, events, frames, {"a", "b"})
    assert stats.detections == (crossing.frames + 2) // 3
    assert sum(f.detected for f in frames) == stats.detections


def test_embeddings_only_for_new_tracks_and_better_views(walk, analyzer, gallery):
    seen = []
    events, frames, stats = run(walk, analyzer, gallery, on_event=seen.append)
    assert seen == events  # the callback saw every event, in order
    by_track = {}
    for f in frames:
        for t in f.tracks:
            by_track[t.id] = max(by_track.get(t.id, 0), t.embeddings)
    assert sum(by_track.values()) == stats.embeddings and all(1 <= n <= 3 for n in by_track.values())
    # analyze() on every frame would have embedded every detected face on every frame.
    assert stats.faces_detected >= 10 * stats.embeddings


def test_face_quality_prefers_large_frontal_faces():
    frontal = fastface.Face(np.array([0, 0, 112, 112], np.float32), 0.9, np.asarray(fastface.ARCFACE_TEMPLATE, np.float32))
    assert fastface.face_quality(frontal) > 0.95
    small = fastface.Face(frontal.bbox / 4, 0.9, frontal.landmarks / 4)
    assert fastface.face_quality(small) == pytest.approx(fastface.face_quality(frontal) * 28 / 80, rel=1e-4)
    turned = fastface.Face(frontal.bbox, 0.9, frontal.landmarks.copy())
    turned.landmarks[2, 0] += 10  # nose towards the right eye
    assert fastface.face_quality(turned) < 0.5 * fastface.face_quality(frontal)


def test_video_file_and_cli_watch(tmp_path, walk, analyzer, gallery):
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (WIDTH, HEIGHT))
    for frame in walk:
        writer.write(frame)
    writer.release()
    stream = fastface.Stream(video, analyzer, gallery)
    assert stream.fps == pytest.approx(25) and stream.live is False
    names = sorted(e.name for e in stream if e.kind == "identified")
    assert names == ["a", "c"] and stream.stats.frames_processed == walk.frames

    gallery_file = tmp_path / "g.ffg"
    gallery.save(gallery_file)
    out = tmp_path / "annotated.avi"
    done = subprocess.run([sys.executable, "-m", "fastface", "watch", str(video), "--gallery", str(gallery_file),
                           "--json", "--annotate", str(out), "--stats-every", "0.000001", *_model_args(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [line["event"] for line in lines]
    assert kinds.count("started") == 2 and kinds.count("lost") == 2 and kinds[-1] == "end"
    assert sorted(line["name"] for line in lines if line["event"] == "identified") == ["a", "c"]
    status = [line for line in lines if line["event"] == "stats"]
    assert status and {"read", "detect", "track", "embed", "identify", "annotate"} <= set(status[-1]["stage_ms"])
    assert all(s["fps"] > 0 and s["dropped"] == 0 for s in status)
    end = lines[-1]
    assert end["reason"] == "eof" and end["stats"]["frames_processed"] == walk.frames
    assert _frame_count(out) == walk.frames
    missing = subprocess.run([sys.executable, "-m", "fastface", "watch", str(tmp_path / "nope.mp4"), "--gallery",
                              str(gallery_file), "--detect-every", "2", *_model_args(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no video file" in missing.stderr and missing.stdout == ""


def test_cli_watch_stops_cleanly_on_sigint(tmp_path, walk, gallery):
    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (WIDTH, HEIGHT))
    frames = list(walk)
    for _ in range(20):  # ~1000 frames: far longer than the test waits
        for frame in frames:
            writer.write(frame)
    writer.release()
    gallery_file = tmp_path / "g.ffg"
    gallery.save(gallery_file)
    out = tmp_path / "annotated.mp4"
    process = subprocess.Popen([sys.executable, "-m", "fastface", "watch", str(video), "--gallery", str(gallery_file),
                                "--json", "--annotate", str(out), *_model_args(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    assert json.loads(first)["event"] == "started", first + process.stderr.read()
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    end = json.loads(rest.splitlines()[-1])
    assert end["event"] == "end" and end["reason"] == "stopped"
    processed = end["stats"]["frames_processed"]
    assert 0 < processed < 20 * walk.frames
    assert _frame_count(out) == processed  # the video was closed properly, every frame in it


def _model_args(folder):
    card = folder / "mobilefacenet.json"
    card.write_text(json.dumps(MOBILEFACENET_CARD))
    return ["--model", str(MOBILEFACENET / "mobilefacenet.param"), "--card", str(card),
            "--detector", str(RETINAFACE_PARAM), "--threads", "1"]


def _frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


# -- bad input ------------------------------------------------------------------------------

def test_sources_that_cannot_be_opened(tmp_path, analyzer):
    with pytest.raises(FileNotFoundError, match="no video file"):
        fastface.Stream(tmp_path / "missing.mp4", analyzer)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError, match="not a video"):
        fastface.Stream(garbage, analyzer)
    with pytest.raises(TypeError, match=r"pass \[image\]"):
        fastface.Stream(np.zeros((10, 10, 3), np.uint8), analyzer)
    with pytest.raises(TypeError):
        fastface.Stream(3.5, analyzer)
    with pytest.raises(OSError, match="GStreamer"):
        fastface.Stream("videotestsrc num-buffers=1 ! nosuchelement ! appsink", analyzer)
    with pytest.raises(OSError, match="camera 99"):
        fastface.Stream(99, analyzer)
    with pytest.raises(TypeError, match="Detector"):
        fastface.Stream([], None)


@pytest.mark.parametrize("options", [
    {"detect_every": 0}, {"detect_every": 1.5}, {"detect_scale": 0}, {"detect_scale": 1.5},
    {"threshold": 1.2}, {"threshold": float("nan")}, {"detect_every": 5, "max_missed": 2},
    {"iou_threshold": 0}, {"min_quality": 1.5}, {"reembed_gain": -0.1}, {"max_embeddings": -1},
    {"full_quality_size": 0}, {"read_timeout": 0}, {"live": "yes"},
])
def test_invalid_options_raise_before_the_source_is_opened(options, analyzer, tmp_path):
    with pytest.raises(ValueError):
        fastface.Stream(tmp_path / "missing.mp4", analyzer, **options)


@pytest.mark.parametrize("live", [False, True])
def test_a_source_that_fails_midway_ends_with_final_events(walk, analyzer, gallery, live):
    def camera():
        for index, frame in enumerate(walk):
            if index == 12:
                raise RuntimeError("camera unplugged")
            yield frame
            if live:
                time.sleep(0.002)

    stream = fastface.Stream(camera(), analyzer, gallery, live=live)
    events = list(stream)
    assert events[-1].kind == "end" and events[-1].info["reason"] == "error"
    assert "camera unplugged" in events[-1].info["error"]
    assert stream.stats.end_reason == "error"
    started = {e.track_id for e in events if e.kind == "started"}
    assert started and started == {e.track_id for e in events if e.kind == "lost"}


def test_a_live_source_that_hangs_times_out(walk, analyzer):
    release = threading.Event()

    def camera():
        yield from list(walk)[:3]
        release.wait(30)  # a driver that stops delivering

    stream = fastface.Stream(camera(), analyzer, live=True, read_timeout=0.5)
    started = time.monotonic()
    events = list(stream)
    release.set()
    assert time.monotonic() - started < 10
    assert events[-1].info["reason"] == "timeout" and stream.stats.frames_processed <= 3


def test_corrupt_and_empty_frames_are_skipped_and_counted(walk, analyzer, gallery):
    frames = list(walk)[:10]
    bad = [None, np.zeros((0, 0, 3), np.uint8), frames[0].astype(np.float32), np.zeros((8, 8, 4), np.uint8), "frame"]
    mixed = frames[:3] + bad + frames[3:]
    stream = fastface.Stream(iter(mixed), analyzer, gallery)
    events = list(stream)
    stats = stream.stats
    assert stats.frames_skipped == len(bad) and stats.frames_processed == len(frames)
    assert stats.frames_read == len(mixed) and sum(stats.skip_reasons.values()) == len(bad)
    assert "c" in [e.name for e in events if e.kind == "identified"] and events[-1].info["reason"] == "eof"


def test_live_source_keeps_only_the_newest_frame(walk, analyzer):
    frames = list(walk)

    def fast_camera():  # 500 frames/s, far faster than detection
        for _ in range(3):
            for frame in frames:
                time.sleep(0.002)
                yield frame

    stream = fastface.Stream(fast_camera(), analyzer, live=True)
    indices = [f.index for f in stream.frames() if f.image is not None]
    stats = stream.stats
    assert stats.frames_read == 3 * len(frames)
    assert stats.frames_dropped > 0 and stats.frames_processed + stats.frames_dropped == stats.frames_read
    assert indices == sorted(indices) and len(indices) == stats.frames_processed


def test_stop_and_breaking_out_end_the_stream(walk, analyzer):
    ended = []

    def camera():
        try:
            yield from walk
        finally:
            ended.append("source closed")

    stream = fastface.Stream(camera(), analyzer, on_event=lambda e: e.kind == "started" and stream.stop())
    events = list(stream)
    assert events[-1].info["reason"] == "stopped" and stream.stats.frames_processed < walk.frames
    assert ended == ["source closed"]

    seen = []
    stream = fastface.Stream(camera(), analyzer, on_event=seen.append)
    for event in stream:
        if event.kind == "started":
            break
    assert seen[-1].kind == "end" and seen[-1].info["reason"] == "closed"
    assert ended == ["source closed"] * 2
    with pytest.raises(RuntimeError, match="only once"):
        next(iter(stream))


def test_detector_only_tracks_without_embedding_and_gallery_must_fit(walk, analyzer):
    frames = list(walk)[:12]
    stream = fastface.Stream(iter(frames), detector=analyzer.detector)
    events = list(stream)
    assert [e.kind for e in events].count("started") == 2 and not [e for e in events if e.kind == "identified"]
    assert stream.stats.embeddings == 0
    with pytest.raises(ValueError, match="128-d"):
        fastface.Stream(iter(frames), analyzer, fastface.Gallery(64))
    with pytest.raises(ValueError, match="needs an embedder"):
        fastface.Stream(iter(frames), detector=analyzer.detector, gallery=fastface.Gallery(128))
