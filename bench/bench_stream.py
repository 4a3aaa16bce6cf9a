"""Video: fastface.Stream (detect every N frames, track, embed once per track) against running
FaceAnalyzer.analyze + a gallery search on every frame, on the same synthetic 640x480 video
(three people walking, two of them crossing). Target: >= 3x the frame rate, same names found."""
import time

import cv2
import pytest

import fastface
from shared_data import DEEPFACE, DEEPFACE_IDENTITIES, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, require
from synthetic_video import Actor, Scene, linear, make_sprite

pytestmark = [require(RETINAFACE_PARAM), require(MOBILEFACENET), require(DEEPFACE)]
THRESHOLD = 0.35


@pytest.fixture(scope="module")
def setup():
    analyzer = fastface.FaceAnalyzer(fastface.Detector(RETINAFACE_PARAM),
                                     fastface.Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD))
    gallery = fastface.Gallery(analyzer.embedder.dim)
    for name, photos in DEEPFACE_IDENTITIES.items():
        gallery.add(name, analyzer.analyze(cv2.imread(str(DEEPFACE / photos[0])))[0].embedding)
    cast = {name: make_sprite(analyzer.detector, photo, 200) for name, photo in
            {"a": "img2.jpg", "b": "img12.jpg", "c": "img14.jpg"}.items()}
    scene = Scene(640, 480, 45, [Actor("a", *cast["a"], linear((500, 60), (-9, 0))),
                                 Actor("b", *cast["b"], linear((-60, 80), (9, 0))),
                                 Actor("c", *cast["c"], linear((250, 480), (0, -6), first=10))])
    return analyzer, gallery, list(scene)


def analyze_every_frame(analyzer, gallery, frames):
    names = set()
    for frame in frames:
        for face in analyzer.analyze(frame):
            best = gallery.search(face.embedding, k=1)[0]
            if best[1] >= THRESHOLD:
                names.add(best[0])
    return names


def stream(analyzer, gallery, frames, detect_every):
    s = fastface.Stream(iter(frames), analyzer, gallery, threshold=THRESHOLD, detect_every=detect_every)
    names = {e.name for e in s if e.kind in ("identified", "identity_changed") and e.name}
    return names, s.stats


@pytest.mark.benchmark(group="video")
def test_stream_vs_analyze_every_frame(benchmark, setup):
    analyzer, gallery, frames = setup
    started = time.perf_counter()
    every_frame_names = analyze_every_frame(analyzer, gallery, frames)
    every_frame_fps = len(frames) / (time.perf_counter() - started)
    every_frame_1, stats_1 = stream(analyzer, gallery, frames, 1)
    names, stats = benchmark.pedantic(stream, (analyzer, gallery, frames, 3), rounds=1, iterations=1)
    report = {"analyze_every_frame_fps": round(every_frame_fps, 1), "stream_detect_every_1_fps": round(stats_1.fps, 1),
              "stream_detect_every_3_fps": round(stats.fps, 1), "speedup": round(stats.fps / every_frame_fps, 2),
              "names": sorted(names), "embeddings_per_track": stats.embeddings_per_track,
              "stage_ms_detect_every_3": {k: round(v, 2) for k, v in stats.stage_ms.items()},
              "stage_ms_detect_every_1": {k: round(v, 2) for k, v in stats_1.stage_ms.items()}}
    benchmark.extra_info.update(report)
    print(f"\n{report}")
    assert every_frame_names == names == every_frame_1 == {"a", "b", "c"}
    assert stats.tracks == 3 and stats.embeddings_per_track <= 3
    assert stats.fps >= 3 * every_frame_fps, report
