"""Sealed files (encryption at rest): AES-GCM in authenticated chunks, keys from the user."""
import os
import sys

import pytest

pytest.importorskip("cryptography", reason="encryption at rest needs the cryptography package")

from fastface import sealed  # noqa: E402

KEY = bytes(range(32))


def seal(path, payload, key=KEY, kind="test", chunk=64):
    with sealed.SealedWriter(path, key, kind, chunk=chunk) as out:
        for start in range(0, len(payload), 50):  # writes that straddle chunks
            out.write(payload[start:start + 50])


def unseal(path, key=KEY, kind="test", n=None):
    with sealed.SealedReader(path, key, kind) as reader:
        data = reader.read(n if n is not None else os.path.getsize(path))
        reader.finish()
    return data


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 1000])
def test_round_trip_and_no_plaintext_on_disk(tmp_path, size):
    payload = (b"alice's template " * 100)[:size]
    seal(tmp_path / "f", payload)
    with sealed.SealedReader(tmp_path / "f", KEY, "test") as reader:
        assert reader.read(size) == payload
        reader.finish()
    if size > 20:
        assert b"alice" not in (tmp_path / "f").read_bytes()


def test_the_same_payload_seals_differently_each_time(tmp_path):
    seal(tmp_path / "a", b"x" * 100)
    seal(tmp_path / "b", b"x" * 100)
    assert (tmp_path / "a").read_bytes() != (tmp_path / "b").read_bytes()


def _read_all(path, n):
    with sealed.SealedReader(path, KEY, "test") as reader:
        reader.read(n)
        reader.finish()


@pytest.mark.parametrize("damage", ["flip_header", "flip_first", "flip_last", "cut_mid", "cut_at_chunk",
                                    "append", "swap_chunks", "drop_chunk"])
def test_any_damage_is_refused(tmp_path, damage):
    path = tmp_path / "f"
    seal(path, bytes(range(200)))  # 64-byte chunks: 4 chunks, the last of 8 bytes
    data = bytearray(path.read_bytes())
    header, chunk = 8 + 16 + 16 + 7 + 4 + 16, 64 + 16
    if damage == "flip_header":
        data[30] ^= 1  # inside the salt: authenticated as associated data (and the key check)
    elif damage == "flip_first":
        data[header + 3] ^= 0x80
    elif damage == "flip_last":
        data[-1] ^= 1
    elif damage == "cut_mid":
        data = data[:header + chunk + 10]
    elif damage == "cut_at_chunk":
        data = data[:header + 2 * chunk]
    elif damage == "append":
        data += data[header:header + chunk]
    elif damage == "swap_chunks":
        first, second = data[header:header + chunk], data[header + chunk:header + 2 * chunk]
        data[header:header + 2 * chunk] = second + first
    else:
        del data[header + chunk:header + 2 * chunk]
    path.write_bytes(bytes(data))
    with pytest.raises(sealed.SealedError):
        _read_all(path, 200)


def test_wrong_key_and_wrong_kind_are_named(tmp_path):
    path = tmp_path / "cache.bin"
    seal(path, b"payload")
    before = path.read_bytes()
    with pytest.raises(sealed.WrongKeyError, match="cache.bin was encrypted with another key"):
        sealed.SealedReader(path, bytes(32), "test")
    with pytest.raises(sealed.DamagedError, match="holds 'test', not 'other'"):
        sealed.SealedReader(path, KEY, "other")
    (tmp_path / "plain").write_bytes(b"SQLite format 3\0" + bytes(100))
    with pytest.raises(sealed.DamagedError, match="not a sealed fastface file"):
        sealed.SealedReader(tmp_path / "plain", KEY, "test")
    assert path.read_bytes() == before


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "f"
    seal(path, b"first version")
    with pytest.raises(RuntimeError):
        with sealed.SealedWriter(path, KEY, "test") as out:
            out.write(b"second")
            raise RuntimeError("crash mid-write")
    assert unseal(path, n=13) == b"first version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_keys_from_argument_environment_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv(sealed.KEY_ENV, raising=False)
    monkeypatch.delenv(sealed.KEY_FILE_ENV, raising=False)
    assert sealed.resolve_key() is None
    assert sealed.resolve_key(KEY.hex()) == KEY == sealed.resolve_key(KEY)
    import base64
    assert sealed.resolve_key(base64.b64encode(KEY).decode()) == KEY
    monkeypatch.setenv(sealed.KEY_ENV, KEY.hex())
    assert sealed.resolve_key() == KEY
    monkeypatch.delenv(sealed.KEY_ENV)
    keys, data = tmp_path / "keys", tmp_path / "data"
    keys.mkdir(), data.mkdir()
    (keys / "gallery.key").write_bytes(KEY)
    monkeypatch.setenv(sealed.KEY_FILE_ENV, str(keys / "gallery.key"))
    assert sealed.resolve_key(data_path=data / "cache") == KEY
    (data / "gallery.key").write_text(KEY.hex() + "\n")
    with pytest.raises(sealed.SealedError, match="same folder as .*never beside the data"):
        sealed.resolve_key(key_file=data / "gallery.key", data_path=data / "cache")
    for bad in ("too short", "ab" * 31, b"\xff" * 31):
        with pytest.raises(sealed.SealedError, match="is not 32 bytes") as error:
            sealed.resolve_key(bad)
        assert "too short" not in str(error.value)  # the key material is never echoed
    with pytest.raises(sealed.SealedError, match="cannot read the key file"):
        sealed.resolve_key(key_file=keys / "missing.key")


# --- encrypted gallery files -----------------------------------------------------------------

@pytest.mark.skipif(sys.version_info < (3, 11), reason="encrypted gallery files need sqlite3 serialize (3.11)")
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_an_encrypted_gallery_file_round_trips_and_is_opaque(tmp_path, dtype, monkeypatch):
    import numpy as np

    from fastface.gallery import Gallery, GalleryError
    from test_gallery import random_gallery

    monkeypatch.delenv(sealed.KEY_ENV, raising=False)
    monkeypatch.delenv(sealed.KEY_FILE_ENV, raising=False)
    gallery, centres = random_gallery(dtype=dtype)
    gallery.add("Zoë Secret", centres[0], metadata={"badge": 7})
    path = tmp_path / "staff.ffg"
    gallery.save(path, key=KEY)
    data = path.read_bytes()
    assert b"Secret" not in data and b"person1" not in data and b"SQLite" not in data
    loaded = Gallery.load(path, key=KEY.hex())
    assert loaded.dtype == dtype and loaded.names == gallery.names and loaded.path is None
    rows, names = loaded.vectors()
    expected_rows, expected_names = gallery.vectors()
    assert names == expected_names and np.array_equal(rows, expected_rows)
    assert loaded.metadata("Zoë Secret")[0]["metadata"] == {"badge": 7}
    loaded.remove("person3")
    loaded.save(path, key=KEY)  # edited in memory, saved whole
    assert "person3" not in Gallery.load(path, key=KEY).names
    saved = path.read_bytes()
    with pytest.raises(GalleryError, match="staff.ffg is an encrypted gallery: give its key"):
        Gallery.load(path)
    with pytest.raises(GalleryError, match="staff.ffg was encrypted with another key"):
        Gallery.load(path, key=bytes(32))
    with pytest.raises(GalleryError, match="staff.ffg is an encrypted gallery file: read it with Gallery.load"):
        Gallery.open(path)
    assert path.read_bytes() == saved  # nothing overwritten
    tampered = bytearray(saved)
    tampered[len(saved) // 2] ^= 4
    path.write_bytes(bytes(tampered))
    with pytest.raises(GalleryError, match="fails authentication"):
        Gallery.load(path, key=KEY)
    assert path.read_bytes() == bytes(tampered)
    monkeypatch.setenv(sealed.KEY_ENV, KEY.hex())
    path.write_bytes(saved)
    assert "Zoë Secret" in Gallery.load(path).names  # the key from the environment
    plain = tmp_path / "plain.ffg"
    gallery.save(plain)
    with pytest.raises(GalleryError, match="is not encrypted"):
        Gallery.load(plain, key=KEY)
