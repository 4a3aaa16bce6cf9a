"""Hand-made malformed ncnn graphs, one or more per layer type the shape checker knows: each one
a layer whose weights, groups or parameters do not fit what reaches it. ncnn trusts them and
reads or writes past a blob (or pops an empty stack); fastface must refuse every one with
ModelError at load. Used by tests/test_model_check.py and as seeds of the model fuzzer.

Each case: (name, input (w, h, c), layer lines after "Input data 0 1 data", regex of the message).
"""
from __future__ import annotations

MALFORMED = [
    # Convolution family: weights fix the input channels, windows must fit the padded input.
    ("convolution-weights-for-28-channels-on-3", (16, 16, 3),
     ["Convolution conv 1 1 data conv 0=4 1=3 3=2 6=1008"], r"weights for 28 input channels but gets 3x16x16"),
    ("convolution-window-larger-than-input", (4, 4, 3),
     ["Convolution conv 1 1 data conv 0=4 1=7 6=588"], r"7x7 window larger than its padded input 3x4x4"),
    ("convolution-negative-padding", (16, 16, 3),
     ["Convolution conv 1 1 data conv 0=4 1=3 4=-5 6=108"], r"negative padding -5"),
    ("convolution-int8-weights-for-other-channels", (16, 16, 3),
     ["Convolution conv 1 1 data conv 0=4 1=3 6=144 8=1"], r"weights for 4 input channels but gets 3x16x16"),
    ("convolutiondepthwise-groups-do-not-divide-channels", (16, 16, 16),
     ["ConvolutionDepthWise dw 1 1 data dw 0=15 1=3 6=405 7=5"], r"5 groups, which do not divide 16 input"),
    ("convolutiondepthwise-weights-for-other-channels", (16, 16, 16),
     ["ConvolutionDepthWise dw 1 1 data dw 0=8 1=3 6=72 7=8"], r"weights for 8 input channels but gets 16x16x16"),
    ("deconvolution-weights-for-other-channels", (8, 8, 3),
     ["Deconvolution up 1 1 data up 0=4 1=2 3=2 6=128"], r"weights that do not fit 3x8x8 in"),
    ("deconvolutiondepthwise-groups-do-not-divide", (8, 8, 8),
     ["DeconvolutionDepthWise up 1 1 data up 0=6 1=2 3=2 6=48 7=3"], r"3 groups, which do not divide 8 input"),
    ("pooling-window-larger-than-input", (4, 4, 3),
     ["Pooling pool 1 1 data pool 0=0 1=8 2=8 5=1"], r"8x8 window larger than its input 3x4x4"),
    ("pooling-on-a-flat-blob", (4, 4, 3),
     ["Flatten flat 1 1 data flat", "Pooling pool 1 1 flat pool 0=0 1=2 2=2"], r"needs a 3-D input .* gets 48"),
    ("innerproduct-reads-past-its-input", (16, 16, 3),
     ["InnerProduct fc 1 1 data fc 0=8 2=8192"], r"takes 1024 values but gets 768"),
    ("eltwise-of-different-shapes", (8, 8, 3),
     ["Split s 1 2 data a b", "Pooling p 1 1 b p 0=0 1=2 2=2", "Eltwise sum 2 1 a p sum 0=1"],
     r"adds 3x8x8 and 3x4x4, which differ"),
    ("eltwise-coefficients-for-other-inputs", (8, 8, 3),
     ["Split s 1 2 data a b", "Eltwise sum 2 1 a b sum 0=1 -23301=3,1.0,1.0,1.0"], r"3 coefficients for 2 inputs"),
    ("binaryop-shapes-that-do-not-broadcast", (8, 8, 3),
     ["Split s 1 2 data a b", "Convolution c 1 1 b c 0=5 1=1 6=15", "BinaryOp add 2 1 a c add 0=0"],
     r"combines 3x8x8 with 5x8x8, which do not broadcast"),
    ("concat-of-different-heights", (8, 8, 3),
     ["Split s 1 2 data a b", "Pooling p 1 1 b p 0=0 1=2 2=2", "Concat cat 2 1 a p cat 0=0"],
     r"joins 3x8x8 and 3x4x4, which differ off its axis"),
    ("concat-axis-out-of-range", (8, 8, 3),
     ["Split s 1 2 data a b", "Concat cat 2 1 a b cat 0=5"], r"axis 5 for a 3-D input"),
    ("slice-larger-than-its-axis", (8, 8, 3),
     ["Slice sl 1 2 data a b -23300=2,2,2 1=0"], r"cuts slice 1 outside 3x8x8"),
    ("slice-sizes-for-fewer-outputs", (8, 8, 3),
     ["Slice sl 1 3 data a b c -23300=2,1,1 1=0"], r"2 slice sizes for 3 outputs"),
    ("crop-beyond-its-input", (8, 8, 3),
     ["Crop cr 1 1 data cr 0=9 1=0 3=4 4=4 5=-233"], r"cuts -1 at offset 9 of an axis of 8"),
    ("crop-to-a-larger-reference", (8, 8, 3),
     ["Split s 1 2 data a b", "Interp big 1 1 b big 0=1 1=2.0 2=2.0", "Crop cr 2 1 a big cr"],
     r"cuts 16 at offset 0 of an axis of 8"),
    ("interp-to-nothing", (8, 8, 3),
     ["Interp down 1 1 data down 0=1 1=0.01 2=0.01"], r"empty or negative-sized blob"),
    ("reshape-to-another-size", (8, 8, 3),
     ["Reshape r 1 1 data r 0=10 1=10 2=3"], r"reshapes 3x8x8 \(192 values\) into"),
    ("reshape-expression-missing-operands", (8, 8, 3),
     ['Reshape r 1 1 data r 6="*(0c)"'], r"malformed shape expression"),
    ("reshape-expression-naming-a-missing-input", (8, 8, 3),
     ['Reshape r 1 1 data r 6="5w,-1"'], r"naming input 5 it lacks"),
    ("permute-order-out-of-range", (8, 8, 3),
     ["Permute p 1 1 data p 0=9"], r"order 9 for 3x8x8"),
    ("padding-per-channel-values-for-other-channels", (8, 8, 3),
     ["Padding pad 1 1 data pad 0=1 1=1 2=1 3=1 6=5"], r"5 per-channel pad values for 3x10x10"),
    ("padding-reflect-beyond-the-input", (4, 4, 3),
     ["Padding pad 1 1 data pad 0=6 1=6 2=6 3=6 4=2"], r"more than it can replicate or reflect"),
    ("softmax-axis-out-of-range", (8, 8, 3),
     ["Softmax sm 1 1 data sm 0=3 1=1"], r"axis 3 for a 3-D input"),
    ("reduction-axis-below-the-rank", (8, 8, 3),
     ["Reduction red 1 1 data red 0=0 1=0 -23303=1,-4 4=1 5=1"], r"axis -4 for a 3-D input"),
    ("batchnorm-for-other-channels", (8, 8, 3),
     ["BatchNorm bn 1 1 data bn 0=16"], r"16 channels but gets 3x8x8"),
    ("scale-for-other-channels", (8, 8, 3),
     ["Scale sc 1 1 data sc 0=4 1=1"], r"4 scales but gets 3x8x8"),
    ("prelu-slopes-for-other-channels", (8, 8, 3),
     ["PReLU pr 1 1 data pr 0=7"], r"7 slopes but gets 3x8x8"),
    ("quantize-scales-for-other-channels", (8, 8, 3),
     ["Quantize q 1 1 data q 0=6"], r"6 scales or biases but gets 3x8x8"),
    ("shufflechannel-groups-do-not-divide", (8, 8, 3),
     ["ShuffleChannel sh 1 1 data sh 0=2"], r"shuffles 3x8x8 in 2 groups"),
    ("innerproduct-int8-reads-past-its-input", (4, 4, 3),
     ["InnerProduct fc 1 1 data fc 0=8 2=512 8=1"], r"takes 64 values but gets 48"),
    ("dequantize-biases-for-other-channels", (8, 8, 3),
     ["Dequantize dq 1 1 data dq 0=3 1=5"], r"5 scales or biases but gets 3x8x8"),
    ("scale-by-a-blob-of-another-size", (8, 8, 3),
     ["Split s 1 2 data a b", "Pooling p 1 1 b p 0=1 4=1", "Crop c 1 1 p c 0=0 3=2", "Scale sc 2 1 a c sc 0=-233"],
     r"scales 3x8x8 by 2"),
    ("interp-size-expression-of-three-values", (8, 8, 3),
     ['Interp i 1 1 data i 0=1 9="1,2,3"'], r"size expression of 3 values"),
    ("blob-feeding-two-layers-without-split", (8, 8, 3),
     ["ReLU r 1 1 data r", "Sigmoid s 1 1 data s"], r"blob 'data' feeds both layer 'r' and layer 's' without a Split"),
    ("layer-reading-an-unset-input", (8, 8, 3),
     ["Input other 0 1 other", "BinaryOp add 2 1 data other add 0=0"], r"reads blob 'other', which nothing before it sets"),
]

#: One graph per known layer type that fits, to prove the checker's shapes are ncnn's.
WELL_FORMED = [
    ("convolutions", (16, 12, 3), [
        "Convolution c1 1 1 data c1 0=8 1=3 3=2 4=1 5=1 6=216",
        "ConvolutionDepthWise dw 1 1 c1 dw 0=8 1=3 4=-233 6=72 7=8",
        "Deconvolution up 1 1 dw up 0=4 1=2 3=2 6=128",
        "DeconvolutionDepthWise upd 1 1 up upd 0=4 1=3 3=2 4=1 6=36 7=4",
        "Convolution c2 1 1 upd c2 0=4 1=3 2=2 3=1 4=2 6=144",
        "Pooling p1 1 1 c2 p1 0=0 1=3 2=2 5=0",
        "Pooling p2 1 1 p1 p2 0=1 1=2 2=2 3=1 5=1",
        "Pooling p3 1 1 p2 p3 0=1 7=1 8=2 18=3",
        "Pooling p4 1 1 p3 p4 0=0 1=2 2=2 5=2",
        "Pooling gp 1 1 p4 gp 0=1 4=1",
        "InnerProduct fc 1 1 gp fc 0=5 1=1 2=20",
    ]),
    ("joins-and-cuts", (16, 12, 3), [
        "Split s 1 4 data a b c d",
        "Concat cat 2 1 a b cat 0=0",
        "Slice sl 1 3 cat x y z -23300=3,2,-233,2 1=0",
        "Eltwise el 2 1 x z el 0=1 -23301=2,0.5,2.0",
        "BinaryOp bo 2 1 el y bo 0=2",
        "Crop cr 1 1 bo cr 0=1 1=2 3=8 4=6 5=-233",
        "Crop cr2 2 1 c cr cr2 0=2 1=1",
        "Padding pad 1 1 cr2 pad 0=1 1=2 2=3 3=0 7=1 8=1 6=4",
        "Interp up 1 1 pad up 0=2 1=2.0 2=1.5",
        "Interp fixed 1 1 up fixed 0=1 3=7 4=9",
        "Split fs 1 2 fixed f1 f2",
        "Reduction mean 1 1 f1 mean 0=3 1=0 -23303=2,1,2 4=1 5=1",
        "BinaryOp se 2 1 f2 mean se 0=2",
        "Permute pm 1 1 se pm 0=3",
        'Reshape rs 1 1 pm rs 6="*(0w,0h),0c"',
        "Reshape rs2 1 1 rs rs2 0=-1 1=4",
        "Softmax sm 1 1 rs2 sm 0=1 1=1",
        "Flatten fl 1 1 sm fl",
    ]),
    ("per-channel", (10, 8, 4), [
        "BatchNorm bn 1 1 data bn 0=4",
        "Scale sc 1 1 bn sc 0=4 1=1",
        "PReLU pr 1 1 sc pr 0=4",
        "ReLU r 1 1 pr r 0=0.1",
        "Sigmoid sg 1 1 r sg",
        "Clip cl 1 1 sg cl 0=0.0 1=6.0",
        "HardSwish hs 1 1 cl hs",
        "Swish sw 1 1 hs sw",
        "TanH th 1 1 sw th",
        "ShuffleChannel shc 1 1 th shc 0=2",
        "Convolution c 1 1 shc c 0=6 1=1 6=24 8=1",
    ]),
]


def param_text(layers: list[str]) -> str:
    """A whole .param: the Input layer, then `layers`; the blob count is an upper bound."""
    lines = ["Input data 0 1 data"] + layers
    blobs = sum(int(line.split()[3]) for line in lines)
    return f"7767517\n{len(lines)} {blobs}\n" + "\n".join(lines) + "\n"


def last_top(layers: list[str]) -> str:
    """The last layer's first output (where a card for the graph points)."""
    fields = layers[-1].split()
    return fields[4 + int(fields[2])]
