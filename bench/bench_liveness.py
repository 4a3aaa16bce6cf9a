"""Liveness, 1 thread, same run: fastface's MiniFASNet pair (crop + both models, ncnn) per face vs
the reference PyTorch path and onnxruntime on the same crops; against one dlib embedding (dlib
itself, dlib-bin, what face_recognition runs) and one of fastface's ncnn port of dlib's ResNet;
``analyze`` per photo with and without liveness. Target: both liveness models together <= 25%
of one dlib embedding. Against fastface's own port the ratio is bounded by compute: the pair has
81 M MACs, the ResNet 271 M (30%), and per MAC the depthwise MiniFASNets run no faster."""
import time
import warnings

import numpy as np
import pytest

import fastface
from shared_data import DEEPFACE, DLIB_RESNET, LIVENESS_SAMPLES, MINIFASNET, require

pytestmark = [require(LIVENESS_SAMPLES), require(DEEPFACE)]
PHOTOS = ["image_F1.jpg", "image_F2.jpg", "image_T1.jpg", "img1.jpg", "img13.jpg", "img22.jpg"]


@pytest.fixture(scope="module")
def photos():
    cv2 = pytest.importorskip("cv2")
    return [cv2.imread(str((LIVENESS_SAMPLES if p.startswith("image_") else DEEPFACE) / p)) for p in PHOTOS]


@pytest.fixture(scope="module")
def faces(photos):
    detector = fastface.Detector(threads=1)
    return [(image, detector.detect(image)[0]) for image in photos]


@pytest.fixture(scope="module")
def live():
    return fastface.Liveness(threads=1)


@pytest.fixture(scope="module")
def fastface_liveness(live, faces):
    return lambda: [live.score(image, face) for image, face in faces]


@pytest.fixture(scope="module")
def reference_crops(live, faces):
    """The reference pipeline's crops (OpenCV resize) of the same mapped boxes, per model."""
    pytest.importorskip("cv2")
    from fastface.export.liveness import box_xywh, reference_crop
    from fastface.eval.liveness import map_box

    crops = {2.7: [], 4.0: []}
    for image, face in faces:
        box = box_xywh(map_box(face.bbox, dict(zip(("dx", "dy", "sw", "sh"), live.box_map))))
        for scale in crops:
            crops[scale].append(reference_crop(image, box, scale).transpose(2, 0, 1)[None].astype(np.float32))
    return crops


@pytest.fixture(scope="module")
def torch_models():
    torch = pytest.importorskip("torch")
    if not MINIFASNET.exists():
        pytest.skip(f"shared test data not found: {MINIFASNET}")
    from fastface.eval.liveness import MODEL_FILES
    from fastface.train.minifasnet import load_minifasnet

    torch.set_num_threads(1)
    return {scale: load_minifasnet(MINIFASNET / name) for scale, name in MODEL_FILES.items()}


@pytest.fixture(scope="module")
def torch_liveness(torch_models, reference_crops):
    """The reference path from its crops: both PyTorch models, softmax, mean of the real class."""
    import torch

    inputs = {s: [torch.from_numpy(c) for c in crops] for s, crops in reference_crops.items()}
    count = len(inputs[2.7])

    def run():
        with torch.no_grad():
            return [np.mean([torch.softmax(torch_models[s](inputs[s][i]), 1)[0, 1].item() for s in torch_models])
                    for i in range(count)]
    return run


@pytest.fixture(scope="module")
def onnx_liveness(torch_models, reference_crops, tmp_path_factory):
    ort = pytest.importorskip("onnxruntime")
    import torch

    folder = tmp_path_factory.mktemp("onnx")
    sessions = {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    for scale, model in torch_models.items():
        path = folder / f"{scale}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, 3, 80, 80), str(path), input_names=["x"], output_names=["y"],
                              dynamo=False)
        sessions[scale] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    count = len(reference_crops[2.7])

    def run():
        out = []
        for i in range(count):
            probs = []
            for scale, session in sessions.items():
                logits = session.run(None, {"x": reference_crops[scale][i]})[0][0].astype(np.float64)
                e = np.exp(logits - logits.max())
                probs.append(e[1] / e.sum())
            out.append(np.mean(probs))
        return out
    return run


@pytest.fixture(scope="module")
def dlib_embedding(faces):
    """One embedding per face with the bundled dlib ResNet (shape predictor + chip + network)."""
    embedder = fastface.Embedder(threads=1)
    return lambda: [embedder.embed_face(image, face) for image, face in faces]


@pytest.fixture(scope="module")
def dlib_itself(dlib, faces):
    """dlib's own embedding of each face (5-point shape on the same box, chip, ResNet)."""
    if not (DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat").exists():
        pytest.skip(f"shared test data not found: {DLIB_RESNET}")
    predictor = dlib.shape_predictor(str(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat"))
    rgb = [(np.ascontiguousarray(image[..., ::-1]), dlib.rectangle(*(int(v) for v in face.bbox))) for image, face in faces]
    return lambda: [net.compute_face_descriptor(image, predictor(image, box)) for image, box in rgb]


@pytest.mark.benchmark(group="liveness-per-face")
def test_fastface(benchmark, fastface_liveness, faces):
    assert len(benchmark(fastface_liveness)) == len(faces)


@pytest.mark.benchmark(group="liveness-per-face")
def test_pytorch_reference(benchmark, torch_liveness, fastface_liveness):
    np.testing.assert_allclose(benchmark(torch_liveness), fastface_liveness(), atol=1e-4)


@pytest.mark.benchmark(group="liveness-per-face")
def test_onnxruntime(benchmark, onnx_liveness, fastface_liveness):
    np.testing.assert_allclose(benchmark(onnx_liveness), fastface_liveness(), atol=1e-4)


@pytest.mark.benchmark(group="liveness-per-face")
def test_dlib_resnet_embedding(benchmark, dlib_embedding, faces):
    assert len(benchmark(dlib_embedding)) == len(faces)


def _median_ms(fn, per: int, rounds: int = 3) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3 / per


def test_liveness_cost(fastface_liveness, torch_liveness, onnx_liveness, dlib_embedding, dlib_itself, faces, photos):
    n = len(faces)
    # Interleaved rounds: the shared machine's load hits every path alike.
    rows = {"fastface": [], "pytorch": [], "onnxruntime": [], "dlib_resnet": [], "dlib": []}
    for _ in range(3):
        rows["fastface"].append(_median_ms(fastface_liveness, n))
        rows["pytorch"].append(_median_ms(torch_liveness, n))
        rows["onnxruntime"].append(_median_ms(onnx_liveness, n))
        rows["dlib_resnet"].append(_median_ms(dlib_embedding, n))
        rows["dlib"].append(_median_ms(dlib_itself, n, 1))
    ms = {k: float(np.median(v)) for k, v in rows.items()}
    plain = fastface.FaceAnalyzer(fastface.Detector(threads=1), fastface.Embedder(threads=1))
    checked = fastface.FaceAnalyzer(plain.detector, plain.embedder, liveness=fastface.Liveness(threads=1))
    analyze = {"without": [], "with": []}
    for _ in range(3):
        analyze["without"].append(_median_ms(lambda: [plain.analyze(p) for p in photos], len(photos), 1))
        analyze["with"].append(_median_ms(lambda: [checked.analyze(p) for p in photos], len(photos), 1))
    without, with_ = (float(np.median(analyze[k])) for k in ("without", "with"))
    print(f"\nliveness per face, 1 thread (both models): fastface {ms['fastface']:.2f} ms, PyTorch "
          f"{ms['pytorch']:.2f} ms ({ms['pytorch'] / ms['fastface']:.1f}x), onnxruntime {ms['onnxruntime']:.2f} ms "
          f"({ms['onnxruntime'] / ms['fastface']:.1f}x); one dlib embedding {ms['dlib']:.2f} ms (liveness = "
          f"{ms['fastface'] / ms['dlib']:.0%} of it), one fastface dlib-ResNet embedding {ms['dlib_resnet']:.2f} ms "
          f"({ms['fastface'] / ms['dlib_resnet']:.0%})")
    print(f"analyze per photo ({len(photos)} photos, 1 thread): {without:.1f} ms without liveness, {with_:.1f} ms with "
          f"(+{with_ / without - 1:.0%})")
    assert ms["fastface"] <= 0.25 * ms["dlib"]
    assert ms["fastface"] <= ms["pytorch"]
