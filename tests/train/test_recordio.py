"""insightface RecordIO: byte format, round trip and corrupt files."""
import struct

import cv2
import numpy as np
import pytest
import torch

from fastface.train.data import RecordDataset, open_dataset
from fastface.train.recordio import (MAGIC, RecordReader, RecordWriter, pack, unpack,
                                     write_face_records)


def png(value, size=16):
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = value, 255 - value, value // 2
    return cv2.imencode(".png", image)[1].tobytes()


def test_record_bytes_follow_dmlc_format(tmp_path):
    """One short record, assembled by hand from the format description."""
    payload = pack(7.0, b"abcde")
    with RecordWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        w.write(0, payload)
    expected = struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * (-len(payload) % 4)
    assert (tmp_path / "a.rec").read_bytes() == expected
    assert (tmp_path / "a.idx").read_text() == "0\t0\n"
    assert payload[:24] == struct.pack("<IfQQ", 0, 7.0, 0, 0)


def test_payload_containing_the_magic_is_split_and_joined(tmp_path):
    magic = struct.pack("<I", MAGIC)
    records = {1: b"abcd" + magic + b"efgh" + magic + b"ij", 2: magic, 3: b"x" + magic + b"yz",
               4: b""}
    with RecordWriter(tmp_path / "a.rec", tmp_path / "a.idx") as w:
        for key, data in records.items():
            w.write(key, data)
    raw = (tmp_path / "a.rec").read_bytes()
    assert struct.unpack_from("<I", raw, 4)[0] >> 29 == 1  # first part of a split record
    reader = RecordReader(tmp_path / "a.rec", tmp_path / "a.idx")
    assert reader.keys.tolist() == [1, 2, 3, 4] and 4 in reader and 5 not in reader
    assert {k: reader.read(k) for k in records} == records


def test_pack_unpack_vector_labels():
    label, payload = unpack(pack((3.0, 9.0), b"img"))
    assert label == (3.0, 9.0) and payload == b"img"
    assert unpack(pack(5, b""))[0] == 5.0


def test_face_records_round_trip(tmp_path):
    faces = [(png(10 * i), label) for i, label in enumerate([2, 0, 1, 0, 2, 2])]
    write_face_records(tmp_path / "train.rec", tmp_path / "train.idx", faces)
    data = open_dataset(tmp_path, image_size=16)
    assert isinstance(data, RecordDataset)
    assert len(data) == 6 and data.num_classes == 3
    by_label = sorted(faces, key=lambda f: f[1])  # the writer groups identities
    for i, (encoded, label) in enumerate(by_label):
        image, got = data[i]
        expected = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert got == label and torch.equal(image, torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    # identity records give each label's image range
    reader = RecordReader(tmp_path / "train.rec", tmp_path / "train.idx")
    assert unpack(reader.read(0))[0] == (7.0, 10.0)
    assert [unpack(reader.read(k))[0] for k in (7, 8, 9)] == [(1.0, 3.0), (3.0, 4.0), (4.0, 7.0)]


def test_plain_records_without_header(tmp_path):
    with RecordWriter(tmp_path / "p.rec", tmp_path / "p.idx") as w:
        for key, label in enumerate([4, 1]):
            w.write(key, pack(label, png(50)))
    data = open_dataset(tmp_path / "p.rec", image_size=8)
    assert len(data) == 2 and data.num_classes == 5  # 1 + the largest label, by scanning
    assert data[0][1] == 4 and data[0][0].shape == (3, 8, 8)


@pytest.fixture
def rec(tmp_path):
    write_face_records(tmp_path / "train.rec", tmp_path / "train.idx", [(png(1), 0), (png(2), 1)])
    return tmp_path / "train.rec", tmp_path / "train.idx"


def test_corrupt_index(rec):
    rec_path, idx_path = rec
    idx_path.write_text("0\t0\n1\tabc\n")
    with pytest.raises(ValueError, match=r"train.idx: not a 'key<TAB>offset' index.*abc"):
        RecordReader(rec_path, idx_path)
    idx_path.write_text(f"0\t{rec_path.stat().st_size + 100}\n")
    with pytest.raises(ValueError, match="lies outside"):
        RecordReader(rec_path, idx_path)
    idx_path.write_text("")
    with pytest.raises(ValueError, match="lists no records"):
        RecordReader(rec_path, idx_path)
    idx_path.unlink()
    with pytest.raises(FileNotFoundError, match="train.idx"):
        open_dataset(rec_path.parent)


def test_corrupt_record_file(rec):
    rec_path, idx_path = rec
    offsets = dict(tuple(map(int, line.split())) for line in idx_path.read_text().splitlines())
    raw = bytearray(rec_path.read_bytes())
    raw[offsets[2]:offsets[2] + 4] = b"JUNK"
    rec_path.write_bytes(bytes(raw))
    data = RecordDataset(rec_path, idx_path, 16)
    with pytest.raises(ValueError, match="corrupt record 2"):
        data[1]
    lines = idx_path.read_text().splitlines()
    idx_path.write_text("\n".join(line for line in lines if not line.startswith("2\t")))
    with pytest.raises(ValueError, match="index has no record 2"):
        RecordDataset(rec_path, idx_path, 16)
    rec_path.write_bytes(bytes(raw[:offsets[1] + 20]))  # cut inside image 1
    idx_path.write_text(f"1\t{offsets[1]}\n")
    with pytest.raises(ValueError, match="record 1 is truncated"):
        RecordReader(rec_path, idx_path).read(1)
