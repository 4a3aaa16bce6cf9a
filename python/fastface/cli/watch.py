"""``fastface watch SOURCE --gallery G``: name the faces in a camera or video as they come and go.

Prints one line per event (JSON lines with ``--json``) and a status line every ``--stats-every``
seconds: frames per second, milliseconds per stage, dropped and skipped frames. Ctrl-C ends
the watch cleanly (exit 0): the source and the ``--annotate`` video are closed; a second
Ctrl-C aborts at once.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from ..stream import STAGES, Event, Stream, _cv2
from ._common import THRESHOLD_HELP, add_liveness_argument, add_model_arguments, models
from ._gallery_options import GALLERY_HELP, add_gallery_options, load_gallery


def add_arguments(parser) -> None:
    parser.add_argument("source", help="camera index (0), video file, rtsp:// URL, or a GStreamer pipeline "
                                       "ending in appsink (see README: Raspberry Pi camera)")
    parser.add_argument("--gallery", required=True, help=GALLERY_HELP + "; a URL is followed live")
    parser.add_argument("--annotate", metavar="OUT.mp4", help="write the video with boxes, track ids and names")
    parser.add_argument("--threshold", type=float, help=THRESHOLD_HELP)
    parser.add_argument("--detect-every", type=int, default=1, metavar="N", help="run the detector on every Nth frame")
    parser.add_argument("--detect-scale", type=float, default=1.0, metavar="S",
                        help="detect on the frame resized by S in (0, 1]")
    parser.add_argument("--max-missed", type=int, default=15, metavar="FRAMES",
                        help="frames a face may go undetected before its track is lost (default 15)")
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                        help="--live: keep only the newest frame (default for cameras, URLs, pipelines); "
                             "--no-live: process every frame (default for files)")
    parser.add_argument("--stats-every", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between status lines (0: none)")
    add_liveness_argument(parser)
    add_model_arguments(parser)
    add_gallery_options(parser)


def _draw(cv2, image, tracks):
    canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for track in tracks:
        x1, y1, x2, y2 = (int(round(v)) for v in track.bbox)
        colour = (0, 0, 255) if track.live is False else (0, 200, 0) if track.name else (0, 200, 255)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness if track.detected else 1)
        label = f"#{track.id} {track.name or ('SPOOF' if track.live is False else '?')}" + \
            (f" {track.score:.2f}" if track.name else "")
        cv2.putText(canvas, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness, colour, thickness)
    return canvas


class _VideoOut:
    """The --annotate writer, opened on the first frame (its size is not known before)."""

    def __init__(self, path: str, fps):
        self.path, self.fps, self.writer, self.size = Path(path), fps or 25.0, None, None
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"no folder {self.path.parent} for --annotate")

    def write(self, cv2, canvas):
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self.size = (canvas.shape[1], canvas.shape[0])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path} (try a .avi or .mp4 name)")
        if (canvas.shape[1], canvas.shape[0]) != self.size:  # a camera that changed resolution
            canvas = cv2.resize(canvas, self.size)
        self.writer.write(canvas)

    def close(self):
        if self.writer is not None:
            self.writer.release()


def _event_text(event: Event) -> str:
    where = f"frame {event.frame}: track {event.track_id}"
    if event.kind == "started":
        return f"{where} started"
    if event.kind == "identified":
        return f"{where} identified as {event.name} ({event.score:.3f})"
    if event.kind == "identity_changed":
        return f"{where} changed from {event.previous} to {event.name or 'unknown'} ({event.score:.3f})"
    if event.kind == "spoof":
        return f"{where} SPOOF: not a live face (liveness {event.liveness:.3f})"
    if event.kind == "lost":
        return f"{where} lost" + (f" ({event.name})" if event.name else "")
    stats = event.info["stats"]
    return (f"end ({event.info['reason']}{': ' + event.info['error'] if event.info['error'] else ''}): "
            f"{stats['frames_processed']} frames at {stats['fps']:.1f} fps, {stats['tracks']} tracks, "
            f"{stats['embeddings']} embeddings, {stats['frames_dropped']} dropped, {stats['frames_skipped']} skipped")


class _Window:
    """Status figures over the frames since the last report: fps and ms per stage per frame."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.reset()

    def reset(self):
        stats = self.stream.stats
        self.start, self.frames, self.seconds = time.monotonic(), stats.frames_processed, dict(stats.stage_seconds)
        self.annotate_seconds = 0.0

    def report(self) -> dict:
        stats, elapsed = self.stream.stats, time.monotonic() - self.start
        frames = stats.frames_processed - self.frames
        stage_ms = {k: round(1000.0 * (stats.stage_seconds[k] - self.seconds[k]) / max(1, frames), 2) for k in STAGES}
        if self.annotate_seconds:
            stage_ms["annotate"] = round(1000.0 * self.annotate_seconds / max(1, frames), 2)
        return {"event": "stats", "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0, "stage_ms": stage_ms,
                "frames": stats.frames_processed, "dropped": stats.frames_dropped, "skipped": stats.frames_skipped,
                "tracks": len(self.stream.tracks)}


def run(args) -> int:
    gallery = load_gallery(args)
    detector, embedder = models(args)
    if args.stats_every < 0:
        raise ValueError(f"--stats-every must be >= 0, got {args.stats_every}")
    stream = Stream(args.source, detector=detector, embedder=embedder, gallery=gallery, threshold=args.threshold,
                    detect_every=args.detect_every, detect_scale=args.detect_scale, max_missed=args.max_missed,
                    live=args.live, liveness=args.liveness)
    cv2 = _cv2() if args.annotate else None
    out = None
    previous_handler = signal.getsignal(signal.SIGINT)

    def interrupted(signum, frame):
        stream.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts at once

    def emit(record: dict, text: str, to=sys.stdout) -> None:
        print(json.dumps(record) if args.json else text, file=to, flush=True)

    end = None
    try:
        out = _VideoOut(args.annotate, stream.fps) if args.annotate else None
        signal.signal(signal.SIGINT, interrupted)
        window = _Window(stream)
        for result in stream.frames():
            for event in result.events:
                emit(event.to_dict(), _event_text(event))
                end = event if event.kind == "end" else end
            if result.image is None:
                continue
            if out is not None:
                started = time.monotonic()
                out.write(cv2, _draw(cv2, result.image, result.tracks))
                window.annotate_seconds += time.monotonic() - started
            if args.stats_every and time.monotonic() - window.start >= args.stats_every:
                status = window.report()
                emit(status, f"{status['fps']:.1f} fps | "
                     + " ".join(f"{k} {v:.1f}" for k, v in status["stage_ms"].items())
                     + f" ms | dropped {status['dropped']} skipped {status['skipped']} | tracks {status['tracks']}",
                     to=sys.stdout if args.json else sys.stderr)
                window.reset()
    except KeyboardInterrupt:  # the second Ctrl-C
        return 130
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        stream.close()
        gallery.close()
        if out is not None:
            out.close()
    return 1 if end is not None and end.info["reason"] in ("error", "timeout") else 0
