"""Write the cross-architecture embedding parity reference for fastface_tests.

Real faces go through the installed Python fastface on this (x86) machine; the C++ test
``cross_arch_embeddings_match_reference`` (cpp/tests/test_cross_parity.cpp), built for ARM and
run under qemu, embeds the same pixels with its NEON kernels and ncnn's ARM code and requires
cosine >= 0.999 with these embeddings.

    python cpp/tests/make_reference.py [--data ../shared/data] [--out build/parity]
    FASTFACE_PARITY_DIR=build/parity qemu-aarch64 -L /usr/aarch64-linux-gnu build/aarch64/fastface_tests cross_arch

Entries (in OUT/reference.txt, one per line after the header):
  crop NAME W H                  an aligned 112x112 crop, embedded as is (Embedder::embed)
  face NAME W H x0 y0 ... x4 y4  a region of a photo plus its 5 landmarks, aligned and embedded
                                 in one pass (Embedder::embed_face: the fused NEON warp)
Their pixels (BGR, tightly packed, in order) are OUT/images.u8; their L2-normalized float32
embeddings (128 per entry, in order) OUT/embeddings.f32. With the ncnn Python package installed,
the MobileFaceNet is also quantized to int8 by ``fastface quantize`` (calibrated on the
deepface-sample photos; OUT/mobilefacenet.int8.param/.bin/.json, made for this parity check, not
gated) and the same entries' int8 embeddings go to OUT/embeddings_int8.f32, for
``cross_arch_int8_embeddings_match_reference``. The crops are the 3 faces of
aligned-lfw and 8 deepface-sample faces aligned here; the landmarks were picked once with
OpenCV's YuNet (the shared yunet_n_640_640.onnx) and are fixed below, so this script needs
only fastface, numpy and cv2 (for JPEG decoding). The files hold photos of real people: they
stay in the build folder and are never committed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

import fastface

MODEL = "mobilefacenet-insightface"
CARD = {"input": "data", "output": "fc1", "size": 112, "channel_order": "RGB", "mean": 0.0, "scale": 1.0,
        "dim": 128}
LFW = ["Aaron_Peirsol_0003", "Aaron_Peirsol_0004", "Aaron_Tippin_0001"]
# deepface-sample photo -> left eye, right eye, nose, left and right mouth corner (pixels).
LANDMARKS = {
    "img1": [(576.3, 501.1), (866.5, 511.9), (723.4, 687.4), (573.5, 775.1), (852.8, 783.0)],
    "img2": [(679.3, 380.4), (860.7, 383.3), (760.0, 495.5), (686.6, 555.5), (852.5, 558.0)],
    "img5": [(144.5, 205.5), (229.1, 206.2), (193.7, 256.4), (149.0, 293.1), (223.7, 293.4)],
    "img11": [(248.4, 212.3), (371.5, 244.5), (298.9, 305.2), (214.5, 332.4), (328.4, 361.7)],
    "img12": [(255.5, 139.3), (321.1, 142.7), (280.4, 181.3), (257.8, 207.8), (312.9, 210.7)],
    "img17": [(427.8, 210.7), (525.1, 202.8), (485.5, 268.8), (442.1, 310.7), (526.1, 304.0)],
    "img22": [(833.0, 312.2), (964.9, 327.7), (888.2, 401.7), (821.8, 440.3), (943.1, 453.5)],
    "img25": [(170.4, 156.3), (245.7, 148.7), (210.8, 195.4), (181.1, 226.4), (250.6, 220.1)],
}
ROI_MAX = 320  # face regions larger than this are shrunk (landmarks with them): small files


def face_region(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo around the face (twice the landmarks' extent), at most ROI_MAX pixels a side."""
    centre = landmarks.mean(axis=0)
    half = 2.0 * float(np.ptp(landmarks, axis=0).max())
    h, w = image.shape[:2]
    x0, y0 = (max(0, int(centre[i] - half)) for i in (0, 1))
    x1, y1 = min(w, int(centre[0] + half)), min(h, int(centre[1] + half))
    roi = image[y0:y1, x0:x1]
    points = landmarks - np.array([x0, y0], np.float32)
    scale = min(1.0, ROI_MAX / max(roi.shape[:2]))
    if scale < 1.0:
        size = (round(roi.shape[1] * scale), round(roi.shape[0] * scale))
        points = points * np.array([size[0] / roi.shape[1], size[1] / roi.shape[0]], np.float32)
        roi = cv2.resize(roi, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(roi), points.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FASTFACE_TEST_DATA", "../shared/data")))
    parser.add_argument("--out", type=Path, default=Path("build/parity"))
    args = parser.parse_args()
    model_dir = args.data / "models" / MODEL
    if not (model_dir / "mobilefacenet.param").is_file():
        sys.exit(f"make_reference: {model_dir} not found (set --data or FASTFACE_TEST_DATA)")
    embedder = fastface.Embedder(model_dir / "mobilefacenet.param", card=CARD, threads=1)

    lines, images, embeddings = [], [], []
    for name in LFW:
        crop = cv2.imread(str(args.data / "faces" / "aligned-lfw" / f"{name}.jpg"))
        if crop is None or crop.shape != (112, 112, 3):
            sys.exit(f"make_reference: cannot read the 112x112 crop {name}.jpg")
        lines.append(f"crop {name} 112 112")
        images.append(crop)
        embeddings.append(embedder.embed(crop)[0])
    for name, points in LANDMARKS.items():
        photo = cv2.imread(str(args.data / "faces" / "deepface-sample" / f"{name}.jpg"))
        if photo is None:
            sys.exit(f"make_reference: cannot read {name}.jpg")
        crop = fastface.align(photo, np.array(points, np.float32))
        lines.append(f"crop {name}-aligned 112 112")
        images.append(crop)
        embeddings.append(embedder.embed(crop)[0])
        roi, roi_points = face_region(photo, np.array(points, np.float32))
        coords = " ".join(f"{v:.9g}" for v in roi_points.reshape(-1))
        lines.append(f"face {name} {roi.shape[1]} {roi.shape[0]} {coords}")
        images.append(roi)
        embeddings.append(embedder.embed_image(roi, roi_points))

    emb = np.stack(embeddings).astype(np.float32)
    # The faces must make sense as faces: same person beats different person.
    same = float(emb[0] @ emb[1])
    different = max(float(emb[0] @ emb[2]), float(emb[1] @ emb[2]))
    if not same > different:
        sys.exit(f"make_reference: Aaron_Peirsol pair scores {same:.3f}, not above Aaron_Tippin's {different:.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    header = [f"fastface-parity 1 model {MODEL} dim {emb.shape[1]} count {len(lines)}",
              f"# made by cpp/tests/make_reference.py on {sys.platform} with best ISA "
              f"{fastface._core.best_isa()}"]
    (args.out / "reference.txt").write_text("\n".join(header + lines) + "\n")
    (args.out / "images.u8").write_bytes(b"".join(np.ascontiguousarray(im).tobytes() for im in images))
    (args.out / "embeddings.f32").write_bytes(emb.tobytes())
    print(f"make_reference: {len(lines)} entries ({sum(l.startswith('face') for l in lines)} photo regions) "
          f"written to {args.out}; Peirsol/Peirsol {same:.3f} vs Tippin {different:.3f}")
    int8_reference(model_dir, args, lines, images)


def int8_reference(model_dir: Path, args, lines, images) -> None:
    """The int8 MobileFaceNet and its embeddings of the same entries (skipped without ncnn)."""
    try:
        import ncnn  # noqa: F401
    except ImportError:
        print("make_reference: no ncnn Python package, no int8 reference", file=sys.stderr)
        return
    from fastface.export.quantize import quantize

    result = quantize(model_dir / "mobilefacenet.param", args.data / "faces" / "deepface-sample", card=CARD,
                      out=args.out, task="recognition", methods=["aciq"], min_faces=10, force=True, search=False)
    int8 = fastface.Embedder(result.param, card=CARD, threads=1)
    out = []
    for line, image in zip(lines, images):
        fields = line.split()
        if fields[0] == "crop":
            out.append(int8.embed(image)[0])
        else:
            out.append(int8.embed_image(image, np.array(fields[4:], np.float32).reshape(5, 2)))
    (args.out / "embeddings_int8.f32").write_bytes(np.stack(out).astype(np.float32).tobytes())
    print(f"make_reference: int8 MobileFaceNet ({result.int8_layers} int8 layers) and its embeddings written")


if __name__ == "__main__":
    main()
