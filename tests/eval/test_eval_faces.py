"""Subject selection (--face central|largest|score) and the centred fallback for missed faces:
rules pinned on stand-in detections, on synthetic compositions of real faces, and on the shared
multi-face photos."""
import numpy as np
import pytest

from fastface.align import ARCFACE_TEMPLATE, align
from fastface.detect import Face
from fastface.eval import evaluate, read_pairs
from fastface.eval.faces import FACE_RULES, FaceCrop, NoFaceError, centred_landmarks, select_face

from shared_data import DEEPFACE, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, require

cv2 = pytest.importorskip("cv2")


def face_at(cx, cy, size, score=0.9):
    """A stand-in detection: box of ``size`` centred at (cx, cy), landmarks where ArcFace puts them."""
    half = size / 2
    landmarks = (ARCFACE_TEMPLATE / 112 - 0.5) * size + [cx, cy]
    return Face(np.array([cx - half, cy - half, cx + half, cy + half], np.float32), score,
                landmarks.astype(np.float32))


class StubDetector:
    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


# A 600x400 photo: a small face at the centre, a large one at the upper left, the most confident
# at the lower right.
SHAPE = (400, 600, 3)
CENTRAL, LARGE, CONFIDENT = face_at(310, 195, 40, 0.80), face_at(110, 110, 150, 0.85), face_at(500, 320, 60, 0.99)


@pytest.mark.parametrize("rule, expected", [("central", CENTRAL), ("largest", LARGE), ("score", CONFIDENT)])
def test_each_rule_picks_its_face(rule, expected):
    for order in ([CENTRAL, LARGE, CONFIDENT], [CONFIDENT, LARGE, CENTRAL], [LARGE, CENTRAL, CONFIDENT]):
        assert select_face(order, SHAPE, rule) is expected


def test_rules_on_edge_cases():
    assert all(select_face([], SHAPE, rule) is None for rule in FACE_RULES)
    twins = [face_at(250, 200, 50, 0.9), face_at(350, 200, 50, 0.9)]  # equally central, equal size and score
    assert all(select_face(twins, SHAPE, rule) is twins[0] for rule in FACE_RULES)
    with pytest.raises(ValueError, match="unknown face rule 'middle'; choose one of central, largest, score"):
        select_face(twins, SHAPE, "middle")
    with pytest.raises(ValueError, match="unknown face rule"):
        FaceCrop(StubDetector([]), face="biggest")


def smooth_photo(height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.dstack([xx / width * 255, yy / height * 255, 128 + 100 * np.sin(xx / 40) * np.cos(yy / 50)]
                     ).astype(np.uint8)


@pytest.mark.parametrize("height, width, window", [(250, 250, np.s_[:, :]), (200, 300, np.s_[:, 50:250]),
                                                   (300, 200, np.s_[50:250, :])])
def test_fallback_is_the_whole_photo_centred(height, width, window):
    photo = smooth_photo(height, width)
    points = centred_landmarks(photo.shape, 112)
    scale = min(height, width) / 112
    np.testing.assert_allclose(points, (ARCFACE_TEMPLATE - 56) * scale + [width / 2, height / 2], rtol=1e-6)
    crop = align(photo, points, 112)
    expected = cv2.resize(photo[window], (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - expected).mean() < 2.5  # the centred square of the photo, resized


def test_face_crop_falls_back_or_stops(tmp_path):
    photo = smooth_photo(250, 250)
    crop, detected = FaceCrop(StubDetector([]), 112).crop(photo)
    assert not detected
    np.testing.assert_array_equal(crop, align(photo, centred_landmarks(photo.shape, 112), 112))
    with pytest.raises(NoFaceError, match="no face detected"):
        FaceCrop(StubDetector([]), 112, strict=True)(photo)
    crop, detected = FaceCrop(StubDetector([LARGE, CENTRAL]), 112).crop(smooth_photo(400, 600))
    assert detected
    np.testing.assert_array_equal(crop, align(smooth_photo(400, 600), CENTRAL.landmarks, 112))


class OnlyIn:
    """Stand-in detector that finds CENTRAL in photos whose top-left pixel is bright, none elsewhere."""

    def detect(self, image):
        return [CENTRAL] if image[0, 0, 0] > 128 else []


def test_evaluate_records_missed_faces(tmp_path):
    for i in range(6):
        image = smooth_photo(400, 600)
        image[0, 0] = 0 if i in (2, 4) else 255  # photos 2 and 4: "no face"
        cv2.imwrite(str(tmp_path / f"p{i}.png"), image)
    rows = [f"p{i}.png,p{(i + 1) % 6}.png,{i % 2}" for i in range(6)] * 2
    (tmp_path / "list.csv").write_text("file_a,file_b,same\n" + "\n".join(rows) + "\n")
    pairs = read_pairs(tmp_path / "list.csv")
    embed = lambda crops: np.array([c.reshape(-1, 3).mean(0) + 1 for c in crops])  # noqa: E731
    result = evaluate(embed, pairs, crop=FaceCrop(OnlyIn(), 112, face="largest"))
    subject = result.summary["subject"]
    assert (subject["face"], subject["strict"], subject["images"], subject["missed"]) == ("largest", False, 6, 2)
    assert [p.rsplit("/", 1)[-1] for p in subject["missed_images"]] == ["p2.png", "p4.png"]
    with pytest.raises(NoFaceError, match=r"p2\.png: no face detected"):
        evaluate(embed, pairs, crop=FaceCrop(OnlyIn(), 112, strict=True))
    assert "subject" not in evaluate(embed, pairs).summary  # images as given: nothing to choose


# ---- real detector and recognizer ---------------------------------------------------------------

def needs_shared(test):
    for marker in (require(MOBILEFACENET), require(DEEPFACE), require(RETINAFACE_PARAM)):
        test = marker(test)
    return test


@pytest.fixture(scope="module")
def detector():
    from fastface import Detector
    return Detector(RETINAFACE_PARAM)


@pytest.fixture(scope="module")
def embedder():
    from fastface import Embedder
    return Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD)


def face_patch(detector, name, size):
    """The largest face of a deepface photo with some context, as a size x size patch."""
    photo = cv2.imread(str(DEEPFACE / name))
    face = select_face(detector.detect(photo), photo.shape, "largest")
    (x1, y1, x2, y2), side = face.bbox, 1.8 * max(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    source = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx - side / 2, cy + side / 2]])
    target = np.float32([[0, 0], [size, 0], [0, size]])
    return cv2.warpAffine(photo, cv2.getAffineTransform(source, target), (size, size), borderMode=cv2.BORDER_REFLECT)


def compose(detector, placements, shape=(800, 1000)):
    """A grey canvas with deepface faces pasted at (name, centre x, centre y, size)."""
    canvas = np.full((*shape, 3), 127, np.uint8)
    for name, cx, cy, size in placements:
        canvas[cy - size // 2: cy - size // 2 + size, cx - size // 2: cx - size // 2 + size] = face_patch(detector, name, size)
    return canvas


def identity(embedder, detector, image, rule):
    """Which reference person (img1 = "a", img3 = "b") the rule's subject is, by cosine."""
    refs = {}
    for person, name in (("a", "img1.jpg"), ("b", "img3.jpg")):
        refs[person] = embedder.embed(FaceCrop(detector, 112, face="largest")(cv2.imread(str(DEEPFACE / name)))[None])[0]
    emb = embedder.embed(FaceCrop(detector, 112, face=rule)(image)[None])[0]
    cosines = {person: float(ref @ emb) for person, ref in refs.items()}
    best = max(cosines, key=cosines.get)
    assert cosines[best] > 0.5 and min(cosines.values()) < 0.3, cosines  # a clear match, not a guess
    return best


@needs_shared
def test_small_centred_subject_and_large_bystander(detector, embedder):
    image = compose(detector, [("img1.jpg", 500, 400, 170), ("img3.jpg", 190, 230, 330)])
    assert len(detector.detect(image)) == 2
    assert identity(embedder, detector, image, "central") == "a"
    assert identity(embedder, detector, image, "largest") == "b"


@needs_shared
def test_large_centred_subject_and_small_bystander(detector, embedder):
    image = compose(detector, [("img1.jpg", 500, 400, 330), ("img3.jpg", 850, 130, 170)])
    assert len(detector.detect(image)) == 2
    assert identity(embedder, detector, image, "central") == identity(embedder, detector, image, "largest") == "a"


@needs_shared
def test_photo_without_a_face(detector):
    blank = smooth_photo(250, 250)
    assert detector.detect(blank) == []
    crop, detected = FaceCrop(detector, 112).crop(blank)
    assert not detected and crop.shape == (112, 112, 3)
    with pytest.raises(NoFaceError):
        FaceCrop(detector, 112, strict=True)(blank)


@needs_shared
@pytest.mark.parametrize("photo", ["couple.jpg", "selfie-many-people.jpg"])
def test_rules_on_shared_group_photos(detector, photo):
    image = cv2.imread(str(DEEPFACE / photo))
    faces = detector.detect(image)
    assert len(faces) >= 2
    boxes = np.array([f.bbox for f in faces])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    distance = np.hypot(*(centres - [image.shape[1] / 2, image.shape[0] / 2]).T)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    assert select_face(faces, image.shape, "central") is faces[int(np.argmin(distance))]
    assert select_face(faces, image.shape, "largest") is faces[int(np.argmax(area))]
    assert select_face(faces, image.shape, "score") is faces[0]  # the detector lists the best first


@needs_shared
def test_group_selfie_rules_disagree_couple_agrees(detector):
    """On the selfie the three rules pick three people: the one in the middle, a face cut by the
    frame's lower right edge (largest box: it is near the camera) and the sharpest face; in the
    couple photo both people are framed alike and every rule picks the same one."""
    selfie = cv2.imread(str(DEEPFACE / "selfie-many-people.jpg"))
    picks = {rule: select_face(detector.detect(selfie), selfie.shape, rule) for rule in FACE_RULES}
    assert len({id(face) for face in picks.values()}) == 3
    assert picks["largest"].bbox[2] >= selfie.shape[1] - 1  # touches the right edge
    centre = (picks["central"].bbox[:2] + picks["central"].bbox[2:]) / 2
    assert np.all(np.abs(centre - [selfie.shape[1] / 2, selfie.shape[0] / 2]) < 0.25 * np.array(selfie.shape[1::-1]))
    couple = cv2.imread(str(DEEPFACE / "couple.jpg"))
    faces = detector.detect(couple)
    assert len({id(select_face(faces, couple.shape, rule)) for rule in FACE_RULES}) == 1
