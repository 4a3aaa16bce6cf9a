"""Seeds of the C++ libFuzzer model-loader target (fuzz/fuzz_model_loader.cpp): the bundled
models, the tiny model of fuzz/targets.py, the shared insightface graphs when present, every
hand-made malformed graph of tests/model_corpus.py and every crasher it found
(tests/fuzz_regressions/model_loader/), each with the header line the target reads.

    python fuzz/model_loader_seeds.py OUT_DIR [--shared ../shared/data/models]
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
sys.path.insert(0, str(ROOT / "tests"))
from model_corpus import MALFORMED, WELL_FORMED, last_top, param_text  # noqa: E402
from targets import BIN_MARK, TINY_PARAM, tiny_bin  # noqa: E402


def seeds(shared: Path | None) -> list[bytes]:
    out = [b"E 16 16 data fc\n" + TINY_PARAM.encode() + BIN_MARK + tiny_bin(), b"E 16 16 data fc\n" + TINY_PARAM.encode()]
    # Every bundled model with its card: recognizers and liveness classifiers as an Embedder
    # (zero weights: the graph is what is fuzzed, not a 11 MB .bin), detectors with weights.
    for card_path in sorted((ROOT / "models").glob("*.json")):
        param = card_path.with_suffix(".param")
        if not param.is_file():
            continue
        card = json.loads(card_path.read_text())
        if card.get("task") == "detection":
            if card.get("kind") == "yunet" and param.with_suffix(".bin").stat().st_size < 1 << 20:
                header = f"D 0 0 {card['input']} yunet\n".encode()
                out.append(header + param.read_bytes() + BIN_MARK + param.with_suffix(".bin").read_bytes())
            continue
        size = card.get("size") or card.get("input_size")
        size = [size, size] if isinstance(size, int) else size
        out.append(f"E {size[0]} {size[1]} {card['input']} {card['output']}\n".encode() + param.read_bytes())
    for _, (w, h, _c), layers, *_ in MALFORMED + WELL_FORMED:
        out.append(f"E {w} {h} data {last_top(layers)}\n{param_text(layers)}".encode())
    # Every crasher this target found, kept as a regression (replayed by tests/test_fuzz_regressions.py).
    out += [case.read_bytes() for case in sorted((ROOT / "tests" / "fuzz_regressions" / "model_loader").glob("*"))]
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
