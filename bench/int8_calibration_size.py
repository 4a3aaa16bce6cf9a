"""How many calibration faces until the int8 scales stop moving (issue 23): a script, not a test.

    python bench/int8_calibration_size.py [--model models/dlib_resnet_v1.param] [--faces 1000]

Cuts up to --faces faces from LFW View 1's photos with fastface's aligner; the last 200 are held
out. For n = 25, 50, 100, ... faces it computes the input scales of every quantizable layer
(KL and percentile) and prints how far they are from the scales of all calibration faces
(median and largest relative change over the layers) and the held-out cosine(int8, fp32) of
the model quantized with them."""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fastface  # noqa: E402
from fastface.export.quantize import calibrate, data, plan  # noqa: E402
from fastface.export.quantize import ncnn_format as nf  # noqa: E402
from fastface.export.quantize.gate import recognizer_figures  # noqa: E402
from shared_data import LFW_VIEW1  # noqa: E402

HELD_OUT = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(fastface.hub.bundled_model("dlib_resnet_v1")))
    parser.add_argument("--faces", type=int, default=1000)
    args = parser.parse_args()
    param = Path(args.model)
    fp32 = fastface.Embedder(param)
    crops = data.face_crops(LFW_VIEW1 / "images", fp32, fastface.Detector(), limit=args.faces)
    calib, held = crops[:-HELD_OUT], crops[-HELD_OUT:]
    model = nf.load(param, param.with_suffix(".bin"))
    floats = {layer.name: nf.float_weights(model, layer) for layer in model.layers if layer.type in nf.QUANTIZABLE}
    blobs = [fl.layer.bottoms[0] for fl in floats.values()]
    c = fp32.card

    def stats_of(n):
        subset = calib[:n]
        return calibrate.collect(param, param.with_suffix(".bin"), c["input"],
                                 lambda: (data.normalized(x, c["channel_order"], c["mean"], c["scale"]) for x in subset),
                                 blobs)

    sizes = [n for n in (25, 50, 100, 200, 400, 800, 1600) if n < len(calib)] + [len(calib)]
    full = stats_of(len(calib))
    print(f"{param.name}: {len(calib)} calibration faces, {len(held)} held out (LFW View 1)")
    print("| faces | method | median scale change | largest scale change | held-out cosine mean / worst |")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.param"
        for n in sizes:
            stats = full if n == len(calib) else stats_of(n)
            for method in ("kl", "percentile"):
                change = [abs(stats[b].scale(method) / full[b].scale(method) - 1) for b in dict.fromkeys(blobs)]
                nf.write_int8(model, plan(model, floats, stats, method, set(), {c["output"]}), out,
                              out.with_suffix(".bin"))
                figures = recognizer_figures(fp32, fastface.Embedder(out, card=c), held)
                print(f"| {n} | {method} | {100 * np.median(change):.1f}% | {100 * np.max(change):.1f}% | "
                      f"{figures['cosine_mean']:.5f} / {figures['cosine_worst']:.5f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
