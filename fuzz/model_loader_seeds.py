"""Seeds of the C++ libFuzzer model-loader target (fuzz/fuzz_model_loader.cpp): the bundled
models, the tiny model of fuzz/targets.py, the shared insightface graphs when present, and every
hand-made malformed graph of tests/model_corpus.py, each with the header line the target reads.

    python fuzz/model_loader_seeds.py OUT_DIR [--shared ../shared/data/models]
"""
import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
sys.path.insert(0, str(ROOT / "tests"))
from model_corpus import MALFORMED, WELL_FORMED, last_top, param_text  # noqa: E402
from targets import BIN_MARK, TINY_PARAM, tiny_bin  # noqa: E402


def seeds(shared: Path | None) -> list[bytes]:
    models = ROOT / "models"
    out = [
        b"E 150 150 data embedding\n" + (models / "dlib_resnet_v1.param").read_bytes(),
        b"E 112 112 in0 out0\n" + (models / "mobilefacenet.param").read_bytes(),
        b"D 0 0 in0 yunet\n" + (models / "yunet_s.param").read_bytes() + BIN_MARK + (models / "yunet_s.bin").read_bytes(),
        b"E 16 16 data fc\n" + TINY_PARAM.encode() + BIN_MARK + tiny_bin(),
        b"E 16 16 data fc\n" + TINY_PARAM.encode(),
    ]
    for _, (w, h, _c), layers, *_ in MALFORMED + WELL_FORMED:
        out.append(f"E {w} {h} data {last_top(layers)}\n{param_text(layers)}".encode())
    if shared is not None:
        mfn = shared / "mobilefacenet-insightface" / "mobilefacenet.param"
        retina = shared / "retinaface-mnet025" / "mnet.25-opt.param"
        if mfn.is_file():
            out.append(b"E 112 112 data fc1\n" + mfn.read_bytes())
        if retina.is_file():
            out.append(b"D 0 0 data retinaface\n" + retina.read_bytes() + BIN_MARK + retina.with_suffix(".bin").read_bytes())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--shared", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in seeds(args.shared):
        (args.out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    main()
