"""Video: detect, track, embed once per track, identify — ``fastface.Stream``.

Running ``FaceAnalyzer.analyze`` on every frame embeds every face on every frame. A Stream
detects every ``detect_every`` frames, follows faces with the C++ tracker in between (IoU
against a constant-velocity prediction), embeds a track when it starts and again only for a
clearly better view, averages those embeddings per track and names the track from a Gallery.
"""
from __future__ import annotations

import collections
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from . import _core
from ._checks import as_image, check_order
from .analyze import FaceAnalyzer
from .detect import Detector, Face
from .embed import DEFAULT_THRESHOLD, Embedder
from .liveness import Liveness

STAGES = ("read", "detect", "track", "embed", "identify", "liveness")
#: Good views (detection frames at min_quality or better) whose mean liveness decides a track.
LIVENESS_VIEWS = 3


def face_quality(face: Face, full_quality_size: float = 80.0) -> float:
    """Recognition quality of a detected face in [0, 1]: min(1, shorter box side /
    ``full_quality_size``) times the landmarks' frontality (yaw and pitch symmetry of the nose
    between eyes and mouth, after levelling the eyes; 1 = frontal)."""
    return float(_core.face_quality(np.asarray(face.bbox, np.float32), np.asarray(face.landmarks, np.float32),
                                    float(full_quality_size)))


@dataclass
class Event:
    """Something that happened to a track, or the end of the stream.

    ``kind``: "started", "identified" (``name``, ``score``), "identity_changed" (``previous`` ->
    ``name``; None = no longer recognized), "lost" (``name`` = its last one), "spoof" (a Stream
    with liveness judged the track a photo or screen; it is never identified) or "end" (``info``:
    ``reason`` — "eof", "stopped", "closed", "error" or "timeout" — ``error`` and the final ``stats``).
    ``liveness``: with liveness on, the track's mean liveness over its views so far (None before any).
    """
    kind: str
    frame: int
    time: float                      # seconds since the stream started
    track_id: Optional[int] = None
    name: Optional[str] = None
    score: Optional[float] = None
    previous: Optional[str] = None
    bbox: Optional[np.ndarray] = field(default=None, repr=False)
    info: dict = field(default_factory=dict, repr=False)
    liveness: Optional[float] = None

    def to_dict(self) -> dict:
        """JSON-ready: None fields left out, boxes rounded to 0.1 px."""
        out = {"event": self.kind, "frame": self.frame, "time": round(self.time, 3)}
        for key in ("track_id", "name", "previous"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.score is not None:
            out["score"] = round(float(self.score), 4)
        if self.bbox is not None:
            out["bbox"] = [round(float(v), 1) for v in self.bbox]
        if self.liveness is not None:
            out["liveness"] = round(float(self.liveness), 4)
        out.update(self.info)
        return out


@dataclass
class TrackState:
    """A tracked face on one frame. ``detected`` is False while the track coasts (a frame
    without detection, or a short miss): ``bbox``/``landmarks`` are then its prediction."""
    id: int
    bbox: np.ndarray
    landmarks: np.ndarray
    detected: bool
    missed: int                      # frames since its last detection
    quality: float                   # of its latest detection
    embeddings: int
    name: Optional[str]              # None until identified
    score: float
    liveness: Optional[float] = None  # mean over its scored views (Stream(liveness=...)), None before any
    live: Optional[bool] = None       # the track's decision: None until LIVENESS_VIEWS views agree on one


@dataclass
class FrameResult:
    """One processed frame. The last result of a stream has ``image`` None and carries the
    final events (lost tracks, then "end")."""
    index: int                       # frame number in the source (dropped frames included)
    image: Optional[np.ndarray]
    tracks: list[TrackState]
    events: list[Event]
    detected: bool                   # whether the detector ran on this frame


@dataclass
class StreamStats:
    """Counters and timings so far. ``stage_ms``: mean milliseconds per processed frame for
    each stage (read = waiting for the source)."""
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0          # live sources: frames replaced by a newer one before processing
    frames_skipped: int = 0          # empty, corrupt or unusable frames
    skip_reasons: dict = field(default_factory=dict)
    detections: int = 0              # detector runs
    faces_detected: int = 0
    embeddings: int = 0
    tracks: int = 0                  # tracks started
    elapsed: float = 0.0             # seconds
    stage_ms: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)  # totals behind stage_ms
    end_reason: Optional[str] = None
    error: Optional[str] = None

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time."""
        return self.frames_processed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def embeddings_per_track(self) -> float:
        return self.embeddings / self.tracks if self.tracks else 0.0

    def to_dict(self) -> dict:
        return {"frames_read": self.frames_read, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "frames_skipped": self.frames_skipped,
                "skip_reasons": dict(self.skip_reasons), "detections": self.detections,
                "faces_detected": self.faces_detected, "embeddings": self.embeddings, "tracks": self.tracks,
                "embeddings_per_track": round(self.embeddings_per_track, 3), "elapsed": round(self.elapsed, 3),
                "fps": round(self.fps, 2), "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "end_reason": self.end_reason, "error": self.error}


def _cv2():
    try:
        import cv2
    except ImportError:
        raise RuntimeError("video files, cameras and detect_scale need OpenCV: pip install opencv-python-headless") from None
    return cv2


class _SourceEnded(Exception):
    """Raised by a source's read: reason "eof" or "error" (with the message)."""

    def __init__(self, reason: str, error: Optional[str] = None):
        super().__init__(reason)
        self.reason, self.error = reason, error


class _Capture:
    """An opened cv2.VideoCapture: camera, file, URL or GStreamer pipeline."""

    def __init__(self, capture, description: str):
        self.capture, self.description = capture, description
        fps = capture.get(_cv2().CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else None

    def read(self):
        try:
            ok, frame = self.capture.read()
        except Exception as exc:  # a backend failing mid-stream ends the stream, not the process
            raise _SourceEnded("error", f"{self.description}: {exc}") from None
        if not ok:
            raise _SourceEnded("eof")  # OpenCV reports end of file and disconnection alike
        return frame

    def close(self):
        self.capture.release()


class _Frames:
    """Any iterator of frames."""
    fps = None

    def __init__(self, iterable):
        self.iterator, self.description = iter(iterable), type(iterable).__name__

    def read(self):
        try:
            return next(self.iterator)
        except StopIteration:
            raise _SourceEnded("eof") from None
        except Exception as exc:
            raise _SourceEnded("error", f"{type(exc).__name__}: {exc}") from None

    def close(self):
        close = getattr(self.iterator, "close", None)  # generators: run their cleanup
        if close is not None:
            close()


def _open_source(source):
    """(source object, whether it is live by nature). Raises before any frame is processed."""
    if isinstance(source, (bool, bytes, np.ndarray)):
        raise TypeError(f"source must be a camera index, a video path or URL, a GStreamer pipeline or an iterator "
                        f"of frames, got {type(source).__name__}" + (" (for one image, pass [image])"
                                                                     if isinstance(source, np.ndarray) else ""))
    if isinstance(source, str) and source.strip().isdigit():
        source = int(source)
    if isinstance(source, (int, np.integer)):
        cv2 = _cv2()
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise OSError(f"cannot open camera {int(source)} (is it connected, and not used by another program?)")
        return _Capture(capture, f"camera {int(source)}"), True
    if isinstance(source, (str, os.PathLike)):
        cv2 = _cv2()
        text = os.fspath(source)
        if "!" in text:  # gst-launch syntax: "libcamerasrc ! ... ! appsink"
            capture = cv2.VideoCapture(text, cv2.CAP_GSTREAMER)
            if not capture.isOpened():
                raise OSError(f"cannot open the GStreamer pipeline {text!r}: it must end in appsink, and OpenCV must be "
                              "built with GStreamer (cv2.getBuildInformation() lists it under Video I/O)")
            return _Capture(capture, "GStreamer pipeline"), True
        if "://" in text:
            capture = cv2.VideoCapture(text)
            if not capture.isOpened():
                raise OSError(f"cannot open the stream {text}")
            return _Capture(capture, text), True
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"no video file at {path}")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"{path} is not a video OpenCV can read")
        return _Capture(capture, str(path)), False
    if hasattr(source, "__iter__") or hasattr(source, "__next__"):
        return _Frames(source), False
    raise TypeError(f"source must be a camera index, a video path or URL, a GStreamer pipeline or an iterator of "
                    f"frames, got {type(source).__name__}")


class _LatestFrame:
    """Reads a live source in a background thread and keeps only the newest frame: when the
    consumer is slower than the camera, older frames are dropped (and counted), never queued."""

    def __init__(self, source):
        self._source = source
        self._lock = threading.Condition()
        self._frame = None               # (index, frame) not yet taken
        self._ended: Optional[_SourceEnded] = None
        self._stop = False
        self.read_count = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="fastface-stream-reader", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while True:
                with self._lock:
                    if self._stop:
                        return
                frame = self._source.read()
                with self._lock:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame = (self.read_count, frame)
                    self.read_count += 1
                    self._lock.notify_all()
        except _SourceEnded as ended:
            with self._lock:
                self._ended = ended
                self._lock.notify_all()
        finally:
            self._source.close()  # this thread owns the source: never released under a blocked read

    def take(self, timeout: float, should_stop: Callable[[], bool]):
        """The newest frame, or raise _SourceEnded ("timeout" when none came for ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._frame is None:
                if self._ended is not None:
                    raise self._ended
                if should_stop():
                    raise _SourceEnded("stopped")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _SourceEnded("timeout", f"no frame for {timeout:g} s")
                self._lock.wait(min(left, 0.05))
            item, self._frame = self._frame, None
            return item

    def close(self):
        with self._lock:
            self._stop = True
        # A read blocked inside a driver cannot be interrupted: the daemon thread releases the
        # source when that read returns.
        self._thread.join(timeout=1.0)


class Stream:
    """Faces in a video, tracked and named: ``for event in Stream(0, analyzer, gallery): ...``.

    ``source``: a camera index (or "0"), a video file, an RTSP/HTTP URL, a GStreamer pipeline
    ending in ``appsink`` (all through OpenCV's VideoCapture) or any iterator of uint8 frames.
    Models: a ``FaceAnalyzer``, or ``detector=`` and ``embedder=``; without an embedder faces
    are tracked but not embedded. ``gallery``: a ``Gallery`` to name tracks from (a track is
    named when its aggregate embedding scores at least ``threshold``), or a gallery file or
    ``postgresql://`` URL to load one from (a URL's gallery follows the server as it changes).

    Options (ValueError when out of range, before the source is opened):
    ``detect_every`` N >= 1 runs the detector on every Nth processed frame (tracks are predicted
    in between); ``detect_scale`` in (0, 1] detects on a frame resized by that factor (boxes are
    mapped back, embeddings use the full frame; for detectors that run at the frame's own size —
    a RetinaFace Detector resizes to its ``max_side`` anyway, lower that instead); ``max_missed`` frames a track survives without
    a detection (>= detect_every - 1); ``iou_threshold`` in (0, 1] to match a detection to a
    track's prediction; ``min_quality`` and ``reembed_gain`` in [0, 1] and ``max_embeddings``
    decide when to embed (see ``face_quality``); ``threshold`` in [-1, 1].

    ``live`` (default: True for cameras, URLs and pipelines, False for files and iterators):
    a live source (a live iterator too) is read by a background thread that keeps only the newest frame, so slow
    processing drops frames (counted in ``stats.frames_dropped``) instead of falling behind;
    ``read_timeout`` seconds without a frame end a live stream. Other sources are read in the
    caller's thread, every frame processed.

    ``liveness`` (True, or a :class:`fastface.Liveness`; default: the analyzer's, else off)
    scores each track on its good views — detection frames where it was detected with
    ``face_quality`` >= ``min_quality`` — and decides per track once ``LIVENESS_VIEWS`` (3) views
    are in: live when their mean reaches the threshold, else spoof. One frame can be fooled by
    blur, glare or a half-turned head; three views from different frames must agree on average,
    and the decision is final for the track (scoring stops), so an attack cannot wait for one
    lucky frame. Until a track is judged live it is not identified; a spoof gets a "spoof" event
    and is never identified.

    Iterate the Stream (or ``events()``) for Events, ``frames()`` for one ``FrameResult`` per
    processed frame, or call ``run()``; ``on_event`` is called with every event as well. The
    stream always ends with "lost" for every open track and one "end" event — at the end of the
    file, when the source fails or disconnects (reason "error", not raised), on ``stop()``, or
    when the caller stops iterating (then via ``on_event`` only). Empty or corrupt frames are
    skipped and counted. Not thread-safe, except ``stop()``.
    """

    def __init__(self, source, analyzer: Optional[FaceAnalyzer] = None, gallery=None, *,
                 detector: Optional[Detector] = None, embedder: Optional[Embedder] = None,
                 threshold: Optional[float] = None, detect_every: int = 1, detect_scale: float = 1.0,
                 max_missed: int = 15, iou_threshold: float = 0.3, min_quality: float = 0.2,
                 reembed_gain: float = 0.15, max_embeddings: int = 5, full_quality_size: float = 80.0,
                 live: Optional[bool] = None, read_timeout: float = 10.0, channel_order: str = "BGR",
                 on_event: Optional[Callable[[Event], None]] = None, liveness=None):
        if analyzer is not None:
            if not isinstance(analyzer, FaceAnalyzer):
                raise TypeError(f"analyzer must be a fastface.FaceAnalyzer, got {type(analyzer).__name__}")
            if detector is not None or embedder is not None:
                raise ValueError("give either analyzer or detector/embedder, not both")
            detector, embedder = analyzer.detector, analyzer.embedder
            if liveness is None:
                liveness = analyzer.liveness
        if not isinstance(detector, Detector):
            raise TypeError("Stream needs a fastface.Detector (detector=) or a FaceAnalyzer")
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be a fastface.Embedder, got {type(embedder).__name__}")
        if isinstance(gallery, (str, os.PathLike)):
            from .gallery import Gallery

            gallery = Gallery.load(gallery)
        if gallery is not None:
            if embedder is None:
                raise ValueError("identifying against a gallery needs an embedder")
            if gallery.dim != embedder.dim:
                raise ValueError(f"the gallery holds {gallery.dim}-d embeddings but the embedder makes {embedder.dim}-d")
        if threshold is None:
            threshold = embedder.threshold if embedder is not None else DEFAULT_THRESHOLD
        if not _is_number(threshold) or not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold!r}")
        if not _is_int(detect_every) or detect_every < 1:
            raise ValueError(f"detect_every must be an int >= 1, got {detect_every!r}")
        if not _is_number(detect_scale) or not 0.0 < detect_scale <= 1.0:
            raise ValueError(f"detect_scale must be in (0, 1], got {detect_scale!r}")
        if not _is_int(max_missed) or max_missed < detect_every - 1:
            raise ValueError(f"max_missed must be an int >= detect_every - 1 ({detect_every - 1}), got {max_missed!r}: "
                             "tracks would be lost between detection frames")
        if not _is_int(max_embeddings):
            raise ValueError(f"max_embeddings must be an int >= 0, got {max_embeddings!r}")
        for name, value in (("iou_threshold", iou_threshold), ("min_quality", min_quality),
                            ("reembed_gain", reembed_gain), ("full_quality_size", full_quality_size)):
            if not _is_number(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not _is_number(read_timeout) or not read_timeout > 0:
            raise ValueError(f"read_timeout must be > 0 seconds, got {read_timeout!r}")
        if live is not None and not isinstance(live, bool):
            raise ValueError(f"live must be True, False or None, got {live!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be callable")
        if liveness is True:
            liveness = Liveness()
        elif liveness is False:
            liveness = None
        if liveness is not None and not isinstance(liveness, Liveness):
            raise TypeError(f"liveness must be True, False or a fastface.Liveness, got {liveness!r}")
        # The core checks the tracker's ranges (ValueError) before the source is touched.
        self._tracker = _core.Tracker(iou_threshold=float(iou_threshold), max_missed=int(max_missed),
                                      full_quality_size=float(full_quality_size), min_quality=float(min_quality),
                                      reembed_gain=float(reembed_gain), max_embeddings=int(max_embeddings))
        self.detector, self.embedder, self.gallery = detector, embedder, gallery
        self.liveness = liveness
        self._min_quality = float(min_quality)
        self._views: dict[int, list[float]] = {}      # track id -> liveness of its scored views
        self._decided: dict[int, bool] = {}           # track id -> live (True) or spoof (False)
        self._aggregates: dict[int, np.ndarray] = {}  # track id -> embedding held until judged live
        self.threshold = float(threshold)
        self.detect_every, self.detect_scale = int(detect_every), float(detect_scale)
        self.read_timeout = float(read_timeout)
        self._order = check_order(channel_order)
        self._on_event = on_event
        if self.detect_scale < 1.0:
            _cv2()
        self._source, live_by_nature = _open_source(source)
        self.live = live_by_nature if live is None else live
        #: The source's nominal frame rate (None when unknown, e.g. for iterators).
        self.fps = self._source.fps
        self._reader = None
        self._stop = threading.Event()
        self._started = self._finished = False
        self._stats = StreamStats()
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._skip_reasons: collections.Counter = collections.Counter()
        self._start_time = time.monotonic()
        self._last_index = -1

    # -- public API -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self) -> Iterator[Event]:
        """Every event, in order; the last one is "end"."""
        for result in self.frames():
            yield from result.events

    def frames(self) -> Iterator[FrameResult]:
        """One FrameResult per processed frame, then a final one (``image`` None) with the
        closing events. A Stream is iterated once."""
        if self._started or self._finished:
            raise RuntimeError("a Stream can be iterated only once (and not after close()); open a new one")
        self._started = True
        self._start_time = time.monotonic()
        if self.live:
            self._reader = _LatestFrame(self._source)
        reason = error = None
        try:
            while reason is None:
                started = time.monotonic()
                try:
                    index, frame = self._read()
                except _SourceEnded as ended:
                    reason, error = ended.reason, ended.error
                    continue
                finally:
                    self._seconds["read"] += time.monotonic() - started
                image, why = _usable(frame)
                if image is None:
                    self._skip_reasons[why] += 1
                    continue
                yield self._process(index, image)
        except Exception as exc:  # a model or callback failing: end the stream, then let it propagate
            self._finish("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if reason is None and not self._finished:  # the caller stopped iterating
                self._finish("closed", None)
        yield FrameResult(self._last_index, None, [], self._finish(reason, error), False)

    def run(self) -> StreamStats:
        """Process the whole stream (events go to ``on_event``); returns the final stats."""
        for _ in self.frames():
            pass
        return self.stats

    def stop(self) -> None:
        """Ask the stream to end after the current frame (safe from signal handlers and other threads)."""
        self._stop.set()

    def close(self) -> None:
        """Release the source (and its reader thread). Iterating to the end closes it too."""
        if not self._finished:
            self._finish("closed", None)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> StreamStats:
        """A snapshot of the counters and per-stage timings."""
        s = self._stats
        if self._reader is not None:
            s.frames_read, s.frames_dropped = self._reader.read_count, self._reader.dropped
        s.frames_skipped = sum(self._skip_reasons.values())
        s.skip_reasons = dict(self._skip_reasons)
        s.tracks = self._tracker.tracks_started
        if not self._finished:
            s.elapsed = time.monotonic() - self._start_time
        s.stage_seconds = dict(self._seconds)
        s.stage_ms = {k: 1000.0 * v / max(1, s.frames_processed) for k, v in self._seconds.items()}
        return replace(s)

    @property
    def tracks(self) -> list[TrackState]:
        """The faces tracked on the latest processed frame."""
        return [self._track_state(t) for t in self._tracker.tracks()]

    # -- internals --------------------------------------------------------------------------

    def _read(self):
        if self._stop.is_set():
            raise _SourceEnded("stopped")
        if self._reader is not None:
            return self._reader.take(self.read_timeout, self._stop.is_set)
        frame = self._source.read()
        index = self._stats.frames_read
        self._stats.frames_read += 1
        return index, frame

    def _process(self, index: int, image: np.ndarray) -> FrameResult:
        stats, seconds, tracker = self._stats, self._seconds, self._tracker
        detect = stats.frames_processed % self.detect_every == 0
        stats.frames_processed += 1
        judged: list[int] = []
        self._last_index = index
        if detect:
            started = time.monotonic()
            boxes, scores, landmarks = self._detect(image)
            stats.detections += 1
            stats.faces_detected += len(scores)
            tracked = time.monotonic()
            tracker.update(index, boxes, scores, landmarks)
            seconds["detect"] += tracked - started
            seconds["track"] += time.monotonic() - tracked
            if self.liveness is not None:
                judged = self._judge_liveness(image)
            if self.embedder is not None:
                self._embed_and_identify(image)
            for track_id in judged:  # now live: name it from the embedding held back
                held = self._aggregates.pop(track_id, None)
                if self._decided[track_id] and held is not None:
                    self._identify(track_id, held)
        else:
            started = time.monotonic()
            tracker.predict(index)
            seconds["track"] += time.monotonic() - started
        tracks = [self._track_state(t) for t in tracker.tracks()]
        events = tracker.take_events()
        spoofs = [("spoof", i, index, "", "", 0.0) for i in judged if not self._decided[i]]
        return FrameResult(index, image, tracks, self._emit(events + spoofs, tracks), detect)

    def _detect(self, image: np.ndarray):
        if self.detect_scale >= 1.0:
            faces = self.detector.detect(image, self._order)
        else:
            height, width = image.shape[:2]
            size = (max(1, round(width * self.detect_scale)), max(1, round(height * self.detect_scale)))
            small = _cv2().resize(image, size, interpolation=_cv2().INTER_AREA)
            faces = self.detector.detect(small, self._order)
            sx, sy = width / size[0], height / size[1]
            for face in faces:
                face.bbox = face.bbox * np.array([sx, sy, sx, sy], np.float32)
                face.landmarks = face.landmarks * np.array([sx, sy], np.float32)
        boxes = np.array([f.bbox for f in faces], np.float32).reshape(-1, 4)
        scores = np.array([f.score for f in faces], np.float32)
        landmarks = np.array([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2)
        return boxes, scores, landmarks

    def _embed_and_identify(self, image: np.ndarray) -> None:
        tracker, seconds = self._tracker, self._seconds
        for track_id in tracker.embedding_wanted():
            started = time.monotonic()
            track = tracker.track(track_id)
            face = Face(track["bbox"], 0.0, track["landmarks"])
            aggregate = tracker.add_embedding(track_id, self.embedder.embed_face(image, face, self._order))
            self._stats.embeddings += 1
            seconds["embed"] += time.monotonic() - started
            if self.liveness is not None and not self._decided.get(track_id, False):
                if track_id not in self._decided:  # pending: identified once judged live
                    self._aggregates[track_id] = aggregate
                continue
            self._aggregates.pop(track_id, None)
            self._identify(track_id, aggregate)

    def _identify(self, track_id: int, aggregate: np.ndarray) -> None:
        started = time.monotonic()
        if self.gallery is not None:
            best = self.gallery.search(aggregate, k=1)
            name, score = best[0] if best else ("", -1.0)
            self._tracker.set_identity(track_id, name if score >= self.threshold else "", float(score))
        self._seconds["identify"] += time.monotonic() - started

    def _judge_liveness(self, image: np.ndarray) -> list[int]:
        """Scores the undecided tracks detected on this frame at good quality; returns the ids
        decided now."""
        started = time.monotonic()
        decided = []
        for t in self._tracker.tracks():
            track_id = t["id"]
            if track_id in self._decided or not t["detected"] or t["missed"] or t["quality"] < self._min_quality:
                continue
            try:
                score = self.liveness.score(image, t["bbox"], self._order)
            except ValueError:  # under 8 px or off the frame: not a view to judge from
                continue
            views = self._views.setdefault(track_id, [])
            views.append(score)
            if len(views) >= LIVENESS_VIEWS:
                self._decided[track_id] = float(np.mean(views)) >= self.liveness.threshold
                decided.append(track_id)
        self._seconds["liveness"] += time.monotonic() - started
        return decided

    def _track_state(self, t: dict) -> TrackState:
        state = _track_state(t)
        views = self._views.get(state.id)
        state.liveness = float(np.mean(views)) if views else None
        state.live = self._decided.get(state.id)
        return state

    def _emit(self, raw_events, tracks: list[TrackState]) -> list[Event]:
        boxes = {t.id: t.bbox for t in tracks}
        now = time.monotonic() - self._start_time
        events = []
        for kind, track_id, frame, name, previous, score in raw_events:
            # A score belongs to a gallery match: identified, changed, or the name a track was lost with.
            scored = kind in ("identified", "identity_changed") or (kind == "lost" and name)
            views = self._views.get(int(track_id))
            events.append(Event(kind, int(frame), now, int(track_id), name or None, float(score) if scored else None,
                                previous or None, boxes.get(track_id),
                                liveness=float(np.mean(views)) if views else None))
            if kind == "lost":
                for held in (self._views, self._decided, self._aggregates):
                    held.pop(int(track_id), None)
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return events

    def _finish(self, reason: str, error: Optional[str]) -> list[Event]:
        """Lose every track, release the source and report the end (once)."""
        self._finished = True
        self._tracker.finish(max(self._last_index, 0))
        if self._reader is not None:
            self._reader.close()
        else:
            self._source.close()
        self._stats.end_reason, self._stats.error = reason, error
        self._stats.elapsed = time.monotonic() - self._start_time
        events = self._emit(self._tracker.take_events(), [])
        end = Event("end", self._last_index, self._stats.elapsed, info={"reason": reason, "error": error,
                                                                         "stats": self.stats.to_dict()})
        if self._on_event is not None:
            self._on_event(end)
        return events + [end]


def _track_state(t: dict) -> TrackState:
    return TrackState(t["id"], t["bbox"], t["landmarks"], t["detected"], t["missed"], t["quality"], t["embeddings"],
                      t["name"] or None, t["score"])


def _usable(frame):
    """(image, None) for a frame the detector can take, else (None, why it was skipped)."""
    if frame is None:
        return None, "empty"
    try:
        image = as_image(frame, "frame")
    except (TypeError, ValueError) as exc:
        text = str(exc)
        return None, "empty" if "empty" in text else text.split(" (")[0]
    return image, None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
