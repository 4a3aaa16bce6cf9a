"""RetinaFace detection on real photos, and its decoding against a plain Python decoding."""
import cv2
import numpy as np
import pytest

import fastface
from shared_data import DEEPFACE, RETINAFACE, RETINAFACE_PARAM, require

pytestmark = [require(RETINAFACE_PARAM), require(DEEPFACE)]


@pytest.fixture(scope="module")
def detector():
    return fastface.Detector(RETINAFACE_PARAM)


def check_face(face, image):
    x1, y1, x2, y2 = face.bbox
    assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    margin = 0.1 * (x2 - x1)
    assert np.all((face.landmarks[:, 0] > x1 - margin) & (face.landmarks[:, 0] < x2 + margin))
    assert np.all((face.landmarks[:, 1] > y1 - margin) & (face.landmarks[:, 1] < y2 + margin))
    # Template order: eyes above the nose above the mouth; image-left eye/mouth corner first.
    assert lx < rx and mlx < mrx and max(ly, ry) < ny < min(mly, mry)


@pytest.mark.parametrize("name", [f"img{i}.jpg" for i in range(1, 26)])
def test_every_sample_photo_has_a_face(detector, name):
    image = cv2.imread(str(DEEPFACE / name))
    faces = detector.detect(image)
    assert len(faces) >= 1 and faces[0].score > 0.9
    check_face(faces[0], image)


def test_multi_face_photos(detector):
    couple = cv2.imread(str(DEEPFACE / "couple.jpg"))
    faces = detector.detect(couple)
    assert len(faces) == 2
    for face in faces:
        check_face(face, couple)
    crowd = detector.detect(cv2.imread(str(DEEPFACE / "selfie-many-people.jpg")))
    assert len(crowd) >= 4
    assert [f.score for f in crowd] == sorted((f.score for f in crowd), reverse=True)


def test_gray_rgb_and_options(detector):
    image = cv2.imread(str(DEEPFACE / "couple.jpg"))
    bgr = detector.detect(image)
    rgb = detector.detect(np.ascontiguousarray(image[..., ::-1]), channel_order="RGB")
    np.testing.assert_allclose([f.bbox for f in rgb], [f.bbox for f in bgr], atol=1e-3)
    assert len(detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))) == 2
    assert len(fastface.Detector(RETINAFACE_PARAM, max_faces=1).detect(image)) == 1
    biggest = max((f.bbox[2] - f.bbox[0]) for f in bgr)
    assert len(fastface.Detector(RETINAFACE_PARAM, min_face=biggest + 1).detect(image)) == 0


def test_no_face_tiny_and_huge_images(detector):
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    face = cv2.imread(str(DEEPFACE / "img5.jpg"))
    huge = cv2.resize(face, (face.shape[1] * 12, face.shape[0] * 12))  # ~4000x6100
    # Both seen by the net at 640 px: the small photo enlarged, the huge one shrunk.
    small = fastface.Detector(RETINAFACE_PARAM, upscale=True).detect(face)[0]
    big = detector.detect(huge)[0]
    np.testing.assert_allclose(big.bbox / 12, small.bbox, atol=6)
    np.testing.assert_allclose(big.landmarks / 12, small.landmarks, atol=4)


def python_decode(image_rgb, threshold=0.5, nms=0.4):
    """RetinaFace decoding written from the model's conventions, on ncnn's raw outputs."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.load_param(str(RETINAFACE_PARAM))
    net.load_model(str(RETINAFACE / "mnet.25-opt.bin"))
    h, w = image_rgb.shape[:2]
    planar = np.ascontiguousarray(image_rgb.transpose(2, 0, 1), dtype=np.float32)  # ncnn.Mat borrows it: keep alive
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(planar))
    boxes, scores, marks = [], [], []
    for stride, sizes in ((32, (512, 256)), (16, (128, 64)), (8, (32, 16))):
        prob = np.array(ex.extract(f"face_rpn_cls_prob_reshape_stride{stride}")[1])
        delta = np.array(ex.extract(f"face_rpn_bbox_pred_stride{stride}")[1])
        lm = np.array(ex.extract(f"face_rpn_landmark_pred_stride{stride}")[1])
        gy, gx = np.mgrid[0:prob.shape[1], 0:prob.shape[2]]
        cx, cy = gx * stride + 8.0, gy * stride + 8.0
        for a, size in enumerate(sizes):
            keep = prob[2 + a] >= threshold
            d = delta[4 * a:4 * a + 4][:, keep]
            pcx, pcy = cx[keep] + size * d[0], cy[keep] + size * d[1]
            pw, ph = size * np.exp(d[2]), size * np.exp(d[3])
            boxes.append(np.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], 1))
            scores.append(prob[2 + a][keep])
            points = lm[10 * a:10 * a + 10][:, keep].T.reshape(-1, 5, 2)
            marks.append(np.stack([cx[keep], cy[keep]], 1)[:, None] + (size + 1) * points)
    boxes, scores, marks = np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks)
    order, kept = np.argsort(-scores, kind="stable"), []
    for i in order:
        ix = np.clip(np.minimum(boxes[i, 2:], boxes[kept, 2:]) - np.maximum(boxes[i, :2], boxes[kept, :2]), 0, None)
        inter = ix[:, 0] * ix[:, 1]
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        if not kept or np.all(inter / (area(boxes[i]) + area(boxes[kept]) - inter) <= nms):
            kept.append(i)
    return np.clip(boxes[kept], 0, [w, h, w, h]), scores[kept], marks[kept]


@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg", "img12.jpg"])
def test_decoding_equals_python_decoding(name):
    image = cv2.imread(str(DEEPFACE / name))
    # At the size the core feeds the net (longer side 640, padded to 32) so raw outputs match.
    scale = 640 / max(image.shape[:2])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = resized.shape[:2]
    canvas = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.uint8)
    canvas[:h, :w] = resized
    boxes, scores, marks = python_decode(canvas[..., ::-1])
    faces = fastface.Detector(RETINAFACE_PARAM, max_side=0).detect(canvas)
    assert len(faces) == len(boxes) > 0
    np.testing.assert_allclose([f.bbox for f in faces], boxes, atol=1.0)
    np.testing.assert_allclose([f.landmarks for f in faces], marks, atol=1.0)
    np.testing.assert_allclose([f.score for f in faces], scores, atol=1e-4)


def test_wrong_model_for_the_decoder(tmp_path):
    from shared_data import MOBILEFACENET
    with pytest.raises(fastface.ModelError, match="does not fit the insightface RetinaFace decoder.*blobs: .*fc1"):
        fastface.Detector(MOBILEFACENET / "mobilefacenet.param")
    with pytest.raises(ValueError, match="unknown detector kind"):
        fastface.Detector(RETINAFACE_PARAM, kind="mtcnn")
    with pytest.raises(FileNotFoundError):
        fastface.Detector(tmp_path / "none.param")
    with pytest.raises(ValueError, match="score_threshold"):
        fastface.Detector(RETINAFACE_PARAM, score_threshold=2.0)
