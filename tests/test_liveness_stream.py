"""Stream(..., liveness=True): a track is judged on LIVENESS_VIEWS good views, a spoof gets a
"spoof" event and is never identified, a live person is identified only once judged live."""
import cv2
import numpy as np
import pytest

import fastface
from fastface.stream import LIVENESS_VIEWS
from shared_data import LIVENESS_SAMPLES, require

pytestmark = require(LIVENESS_SAMPLES)


@pytest.fixture(scope="module")
def analyzer():
    return fastface.FaceAnalyzer(fastface.Detector(threads=1), fastface.Embedder(threads=1),
                                 liveness=fastface.Liveness(threads=1))


@pytest.fixture(scope="module")
def photos():
    return {n: cv2.imread(str(LIVENESS_SAMPLES / f"image_{n}.jpg")) for n in ("F1", "T1")}


@pytest.fixture(scope="module")
def gallery(analyzer, photos):
    # The live photo's person, who is also the subject of the poster in F1.
    gallery = fastface.Gallery(analyzer.embedder.dim)
    gallery.add("subject", analyzer.largest_face(photos["T1"]).embedding)
    return gallery


def kinds(events):
    return [(e.kind, e.frame) for e in events if e.kind != "end"]


def test_live_person_is_identified_once_judged_live(analyzer, gallery, photos):
    results = list(fastface.Stream([photos["T1"]] * 5, analyzer, gallery).frames())
    events = [e for r in results for e in r.events]
    assert kinds(events) == [("started", 0), ("identified", LIVENESS_VIEWS - 1), ("lost", 4)]
    identified = events[1]
    assert identified.name == "subject" and identified.liveness > 0.9
    assert identified.to_dict()["liveness"] == round(identified.liveness, 4)
    # Pending until the third view, then live.
    assert [r.tracks[0].live for r in results[:-1]] == [None, None, True, True, True]
    assert results[0].tracks[0].liveness > 0.9


def test_printed_photo_is_a_spoof_and_never_identified(analyzer, gallery, photos):
    # Without liveness the poster opens the door.
    plain = fastface.Stream([photos["F1"]] * 5, fastface.FaceAnalyzer(analyzer.detector, analyzer.embedder), gallery)
    assert "identified" in [e.kind for e in plain]
    events = list(fastface.Stream([photos["F1"]] * 6, analyzer, gallery))
    assert kinds(events) == [("started", 0), ("spoof", LIVENESS_VIEWS - 1), ("lost", 5)]
    spoof = events[1]
    assert spoof.track_id == events[0].track_id and spoof.liveness < 0.5 and spoof.to_dict()["event"] == "spoof"


def test_liveness_without_gallery_and_mean_of_views_decides(analyzer, photos):
    # Two spoof views and one live view of the same track (the same place in the frame).
    frames = [photos["F1"], photos["F1"], photos["T1"]]
    live = analyzer.liveness
    faces = [analyzer.detector.detect(f)[0] for f in frames]
    mean = np.mean([live.score(f, face) for f, face in zip(frames, faces)])
    stream = fastface.Stream(frames, detector=analyzer.detector, liveness=live, iou_threshold=0.05)
    results = list(stream.frames())
    assert results[2].tracks and results[2].tracks[0].liveness == pytest.approx(mean, abs=1e-6)
    assert results[2].tracks[0].live is bool(mean >= live.threshold) is False
    assert stream.stats.stage_ms["liveness"] > 0


def test_liveness_option_is_checked(analyzer, photos):
    with pytest.raises(TypeError, match="liveness"):
        fastface.Stream([photos["T1"]], analyzer, liveness="on")
    # liveness=False turns off the analyzer's.
    stream = fastface.Stream([photos["T1"]], analyzer, liveness=False)
    assert stream.liveness is None
    assert all(t.liveness is None for r in stream.frames() for t in r.tracks)
