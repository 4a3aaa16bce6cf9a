#include "graph_check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stack>

#include "datareader.h"
#include "layer.h"
#include "modelbin.h"
#include "fastface/error.h"

namespace fastface {

std::string BlobShape::str() const {
    switch (dims) {
        case 1: return std::to_string(w);
        case 2: return std::to_string(h) + "x" + std::to_string(w);
        case 3: return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
        case 4: return std::to_string(c) + "x" + std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(w);
        default: return "nothing";
    }
}

namespace {

using Layer = GraphCheck::Layer;
using Shapes = std::vector<BlobShape>;

// ParamDict::load_param is protected (Net is its friend); this exposes it to read a layer's
// parameters exactly as Net::load_param did.
struct ParamText : ncnn::ParamDict {
    using ncnn::ParamDict::load_param;
};

// A layer form the checker does not model (dynamic weights, shape expressions on floats, ...):
// treated like an unknown layer type.
struct Unsupported {
    std::string why;
};

// Blob sizes beyond these are refused before ncnn would try to allocate them.
constexpr long long kMaxSide = 1 << 24;
constexpr long long kMaxValues = (1LL << 30) / 4;

[[noreturn]] void refuse(const Layer& l, const std::string& what) {
    throw Error(ErrorCode::ModelFormat,
                "layer '" + l.name + "' (" + l.type + ") " + what +
                    ": a malformed model file, or an input size the model was not made for");
}

BlobShape shape(int dims, long long w, long long h = 1, long long d = 1, long long c = 1) {
    BlobShape s;
    s.dims = dims;
    s.w = static_cast<int>(std::clamp(w, -1LL, kMaxSide + 1));
    s.h = static_cast<int>(std::clamp(h, -1LL, kMaxSide + 1));
    s.d = static_cast<int>(std::clamp(d, -1LL, kMaxSide + 1));
    s.c = static_cast<int>(std::clamp(c, -1LL, kMaxSide + 1));
    return s;
}

// Every output a layer computes must be a real, allocatable blob.
void check_output(const Layer& l, const BlobShape& in, const BlobShape& out) {
    if (out.w < 1 || out.h < 1 || out.d < 1 || out.c < 1)
        refuse(l, "would produce an empty or negative-sized blob from " + in.str());
    if (out.w > kMaxSide || out.h > kMaxSide || out.d > kMaxSide || out.c > kMaxSide || out.total() > kMaxValues)
        refuse(l, "would produce a blob of more than 1 GiB from " + in.str());
}

int geti(const Layer& l, int id, int def) { return l.params.get(id, def); }
float getf(const Layer& l, int id, float def) { return l.params.get(id, def); }
std::string gets(const Layer& l, int id) { return l.params.get(id, std::string()); }

// An int array parameter (ncnn type 5), or empty. A float array where ints belong is refused.
std::vector<int> get_ints(const Layer& l, int id) {
    const int type = l.params.type(id);
    if (type == 0 || type == 4) return {};
    if (type != 5) refuse(l, "has a non-integer list in parameter " + std::to_string(id));
    const ncnn::Mat m = l.params.get(id, ncnn::Mat());
    const int* p = m;
    return std::vector<int>(p, p + m.w);
}

void expect_blobs(const Layer& l, std::size_t bottoms, std::size_t tops) {
    if (l.bottoms.size() != bottoms || l.tops.size() != tops)
        refuse(l, "has " + std::to_string(l.bottoms.size()) + " inputs and " + std::to_string(l.tops.size()) +
                      " outputs; it takes " + std::to_string(bottoms) + " and " + std::to_string(tops));
}

// The size of `s` along a per-channel parameter's axis, as ncnn's BatchNorm, Scale, PReLU and
// the quantize layers index it: w for 1-D, h (rows) for 2-D, channels above.
int channel_axis(const BlobShape& s) { return s.dims == 1 ? s.w : s.dims == 2 ? s.h : s.c; }

void check_per_channel(const Layer& l, const BlobShape& in, long long count, const char* what, bool one_allowed) {
    if (count == channel_axis(in) || (one_allowed && count == 1)) return;
    refuse(l, std::string("has ") + std::to_string(count) + " " + what + " but gets " + in.str());
}

// ---- shape expressions (Reshape 6=, Interp 9=): ncnn evaluates prefix lists such as
// "1,*(0c,0h)" without checking their arity, so a malformed one pops an empty stack. ----
std::vector<long long> eval_expression(const Layer& l, const std::string& expr, const Shapes& in) {
    std::vector<std::string> tokens;
    std::string t;
    int depth = 0;
    for (char ch : expr) {
        if (ch == '(' || ch == ')' || ch == ',') {
            if (!t.empty()) tokens.push_back(t);
            t.clear();
            depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
            if (depth < 0) refuse(l, "has an unbalanced shape expression \"" + expr + "\"");
        } else {
            t += ch;
        }
    }
    if (!t.empty()) tokens.push_back(t);
    if (depth != 0) refuse(l, "has an unbalanced shape expression \"" + expr + "\"");
    std::stack<long long> stack;
    const auto pop = [&]() {
        if (stack.empty()) refuse(l, "has a malformed shape expression \"" + expr + "\" (an operator lacks operands)");
        const long long v = stack.top();
        stack.pop();
        return v;
    };
    for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
        const std::string& tok = *it;
        if (tok.size() == 2 && tok[0] >= '0' && tok[0] <= '9' && std::string("whdc").find(tok[1]) != std::string::npos) {
            const std::size_t index = tok[0] - '0';
            if (index >= in.size()) refuse(l, "has a shape expression naming input " + tok.substr(0, 1) + " it lacks");
            const BlobShape& s = in[index];
            stack.push(tok[1] == 'w' ? s.w : tok[1] == 'h' ? s.h : tok[1] == 'd' ? s.d : s.c);
        } else if (tok == "+" || tok == "-" || tok == "*" || tok == "//" || tok == "max" || tok == "min") {
            const long long a = pop(), b = pop();
            if (tok == "//" && b == 0) refuse(l, "has a shape expression that divides by zero");
            stack.push(tok == "+" ? a + b : tok == "-" ? a - b : tok == "*" ? a * b : tok == "//" ? a / b
                       : tok == "max" ? std::max(a, b) : std::min(a, b));
            if (std::llabs(stack.top()) > kMaxValues) refuse(l, "has a shape expression out of range");
        } else if (tok == "abs" || tok == "neg" || tok == "square") {
            const long long a = pop();
            stack.push(tok == "abs" ? std::llabs(a) : tok == "neg" ? -a : a * a);
            if (std::llabs(stack.top()) > kMaxValues) refuse(l, "has a shape expression out of range");
        } else if (!tok.empty() && tok.find_first_not_of("-0123456789") == std::string::npos &&
                   tok.find_first_of("0123456789") != std::string::npos && tok.size() < 10) {
            stack.push(std::stoll(tok));
        } else {
            throw Unsupported{"a shape expression with '" + tok + "'"};
        }
    }
    std::vector<long long> values;
    while (!stack.empty()) values.push_back(pop());
    return values;
}

// ---- convolution family ----
struct Window {
    int kernel_w, kernel_h, dilation_w, dilation_h, stride_w, stride_h, pad_left, pad_right, pad_top, pad_bottom;
};

Window read_window(const Layer& l) {
    Window k{};
    k.kernel_w = geti(l, 1, 0);
    k.kernel_h = geti(l, 11, k.kernel_w);
    k.dilation_w = geti(l, 2, 1);
    k.dilation_h = geti(l, 12, k.dilation_w);
    k.stride_w = geti(l, 3, 1);
    k.stride_h = geti(l, 13, k.stride_w);
    k.pad_left = geti(l, 4, 0);
    k.pad_right = geti(l, 15, k.pad_left);
    k.pad_top = geti(l, 14, k.pad_left);
    k.pad_bottom = geti(l, 16, k.pad_top);
    if (k.kernel_w < 1 || k.kernel_h < 1 || k.dilation_w < 1 || k.dilation_h < 1 || k.stride_w < 1 || k.stride_h < 1)
        refuse(l, "has a kernel, dilation or stride below 1");
    const int pads[4] = {k.pad_left, k.pad_right, k.pad_top, k.pad_bottom};
    for (int p : pads)
        if (p < 0 && p != -233 && p != -234) refuse(l, "has a negative padding " + std::to_string(p));
    return k;
}

bool same_padding(const Window& k) {
    return k.pad_left == -233 || k.pad_right == -233 || k.pad_top == -233 || k.pad_bottom == -233 ||
           k.pad_left == -234 || k.pad_right == -234 || k.pad_top == -234 || k.pad_bottom == -234;
}

// Output size of a convolution over `in` (ncnn's make_padding, then the valid window count).
BlobShape convolved(const Layer& l, const BlobShape& in, const Window& k, int num_output) {
    const long long extent_w = static_cast<long long>(k.dilation_w) * (k.kernel_w - 1) + 1;
    const long long extent_h = static_cast<long long>(k.dilation_h) * (k.kernel_h - 1) + 1;
    long long w = in.w, h = in.h;
    if (same_padding(k)) {
        w = std::max(w, extent_w + (w - 1) / k.stride_w * k.stride_w);
        h = std::max(h, extent_h + (h - 1) / k.stride_h * k.stride_h);
    } else {
        w += static_cast<long long>(k.pad_left) + k.pad_right;
        h += static_cast<long long>(k.pad_top) + k.pad_bottom;
    }
    if (w < extent_w || h < extent_h)
        refuse(l, "has a " + std::to_string(extent_h) + "x" + std::to_string(extent_w) + " window larger than its padded input " +
                      in.str());
    return shape(3, (w - extent_w) / k.stride_w + 1, (h - extent_h) / k.stride_h + 1, 1, num_output);
}

std::string groups_message(int group, int inputs, int outputs) {
    return "has " + std::to_string(group) + " groups, which do not divide " + std::to_string(inputs) + " input / " +
           std::to_string(outputs) + " output channels";
}

// What every (de)convolution declares: outputs, weight count, groups, window. `dynamic_id`: the
// parameter that says its weights come from a blob (a form the checker does not model).
struct Convolution {
    int num_output;
    long long weight_size;
    int group;
    Window k;
};

Convolution read_convolution(const Layer& l, bool depthwise, int dynamic_id) {
    if (geti(l, dynamic_id, 0)) throw Unsupported{"dynamic weights"};
    expect_blobs(l, 1, 1);
    const Convolution c{geti(l, 0, 0), geti(l, 6, 0), depthwise ? geti(l, 7, 1) : 1, read_window(l)};
    if (c.num_output < 1 || c.weight_size < 1 || c.group < 1) refuse(l, "has no outputs, weights or groups");
    return c;
}

void convolution(const Layer& l, const Shapes& in, Shapes& out, bool depthwise) {
    const auto [num_output, weight_size, group, k] = read_convolution(l, depthwise, 19);
    const long long maxk = static_cast<long long>(k.kernel_w) * k.kernel_h;
    const BlobShape& x = in[0];
    if (!depthwise && x.dims == 1 && k.kernel_w == 1 && k.kernel_h == 1) {  // ncnn runs it as InnerProduct
        if (weight_size % num_output || x.w != weight_size / num_output)
            refuse(l, "takes " + std::to_string(weight_size / num_output) + " values but gets " + x.str());
        out[0] = shape(1, num_output);
        return;
    }
    if (x.dims != 3) refuse(l, "needs a 3-D input (channels x height x width) but gets " + x.str());
    if (x.c % group || num_output % group) refuse(l, groups_message(group, x.c, num_output));
    // Weights hold maxk x (inputs per group) x (outputs per group) per group.
    const long long wanted = maxk * (x.c / group) * (num_output / group) * group;
    if (weight_size != wanted) {
        const long long per = maxk * num_output;
        const std::string fits = weight_size * group % per ? "no whole number of" : std::to_string(weight_size * group / per);
        refuse(l, "has weights for " + fits + " input channels but gets " + x.str());
    }
    out[0] = convolved(l, x, k, num_output);
    check_output(l, x, out[0]);
}

void deconvolution(const Layer& l, const Shapes& in, Shapes& out, bool depthwise) {
    const auto [num_output, weight_size, group, k] = read_convolution(l, depthwise, 28);
    const int output_pad_right = geti(l, 18, 0), output_pad_bottom = geti(l, 19, output_pad_right);
    const int output_w = geti(l, 20, 0), output_h = geti(l, 21, output_w);
    if (output_pad_right < 0 || output_pad_bottom < 0) refuse(l, "has a negative output padding");
    const BlobShape& x = in[0];
    if (x.dims != 3) refuse(l, "needs a 3-D input (channels x height x width) but gets " + x.str());
    if (x.c % group || num_output % group) refuse(l, groups_message(group, x.c, num_output));
    const long long maxk = static_cast<long long>(k.kernel_w) * k.kernel_h;
    if (weight_size != maxk * (x.c / group) * (num_output / group) * group)
        refuse(l, "has weights that do not fit " + x.str() + " in, " + std::to_string(num_output) + " out");
    const long long extent_w = static_cast<long long>(k.dilation_w) * (k.kernel_w - 1) + 1;
    const long long extent_h = static_cast<long long>(k.dilation_h) * (k.kernel_h - 1) + 1;
    long long w = (x.w - 1LL) * k.stride_w + extent_w + output_pad_right;
    long long h = (x.h - 1LL) * k.stride_h + extent_h + output_pad_bottom;
    if (k.pad_left > 0 || k.pad_right > 0 || k.pad_top > 0 || k.pad_bottom > 0) {
        if (same_padding(k)) refuse(l, "mixes explicit and automatic padding");
        w -= static_cast<long long>(k.pad_left) + k.pad_right;
        h -= static_cast<long long>(k.pad_top) + k.pad_bottom;
    } else if (output_w > 0 && output_h > 0) {
        if (output_w > w || output_h > h) refuse(l, "asks for an output larger than it computes");
        if (same_padding(k)) w = output_w, h = output_h;
    }
    out[0] = shape(3, w, h, 1, num_output);
    check_output(l, x, out[0]);
}

void inner_product(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const int num_output = geti(l, 0, 0);
    const long long weight_size = geti(l, 2, 0);
    if (num_output < 1 || weight_size < 1) refuse(l, "has no outputs or weights");
    const long long num_input = weight_size / num_output;
    if (weight_size % num_output) refuse(l, "has weights that fit no whole input size");
    const BlobShape& x = in[0];
    if (x.dims == 2 && x.w == num_input) {  // one row per sample
        out[0] = shape(2, num_output, x.h);
        return;
    }
    if (x.total() != num_input)
        refuse(l, "takes " + std::to_string(num_input) + " values but gets " + std::to_string(x.total()) + " (" + x.str() + ")");
    out[0] = shape(1, num_output);
}

void pooling(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const BlobShape& x = in[0];
    const int type = geti(l, 0, 0);
    if (type != 0 && type != 1) refuse(l, "has an unknown pooling type " + std::to_string(type));
    if (x.dims != 3) refuse(l, "needs a 3-D input (channels x height x width) but gets " + x.str());
    if (geti(l, 4, 0)) {  // global
        out[0] = shape(1, x.c);
        return;
    }
    if (geti(l, 7, 0)) {  // adaptive
        const int ow = geti(l, 8, 0), oh = geti(l, 18, ow);
        out[0] = shape(3, ow == -233 ? x.w : ow, oh == -233 ? x.h : oh, 1, x.c);
        check_output(l, x, out[0]);
        return;
    }
    const int kernel_w = geti(l, 1, 0), kernel_h = geti(l, 11, kernel_w);
    const int stride_w = geti(l, 2, 1), stride_h = geti(l, 12, stride_w);
    const int pad_left = geti(l, 3, 0), pad_right = geti(l, 14, pad_left);
    const int pad_top = geti(l, 13, pad_left), pad_bottom = geti(l, 15, pad_top);
    const int pad_mode = geti(l, 5, 0);
    if (kernel_w < 1 || kernel_h < 1 || stride_w < 1 || stride_h < 1) refuse(l, "has a kernel or stride below 1");
    if (pad_left < 0 || pad_right < 0 || pad_top < 0 || pad_bottom < 0) refuse(l, "has a negative padding");
    if (pad_mode < 0 || pad_mode > 3) refuse(l, "has an unknown padding mode " + std::to_string(pad_mode));
    long long w = x.w, h = x.h;
    if (pad_mode == 0 || pad_mode == 1) {
        w += static_cast<long long>(pad_left) + pad_right;
        h += static_cast<long long>(pad_top) + pad_bottom;
        if (pad_mode == 0 && w >= kernel_w && h >= kernel_h) {  // full padding rounds the last window up
            const long long wtail = (w - kernel_w) % stride_w, htail = (h - kernel_h) % stride_h;
            if (wtail) w += stride_w - wtail;
            if (htail) h += stride_h - htail;
        }
    } else {
        w = std::max(w, kernel_w + (w - 1) / stride_w * stride_w);
        h = std::max(h, kernel_h + (h - 1) / stride_h * stride_h);
    }
    if (w < kernel_w || h < kernel_h)
        refuse(l, "has a " + std::to_string(kernel_h) + "x" + std::to_string(kernel_w) + " window larger than its input " + x.str());
    out[0] = shape(3, (w - kernel_w) / stride_w + 1, (h - kernel_h) / stride_h + 1, 1, x.c);
    check_output(l, x, out[0]);
}

// ncnn's BinaryOp: the lower-rank operand is expanded on its inner axes, then every axis must
// match or be 1 (broadcast); anything else reads past the smaller operand.
void binary_op(const Layer& l, const Shapes& in, Shapes& out) {
    if (geti(l, 1, 0)) {  // with a scalar
        expect_blobs(l, 1, 1);
        out[0] = in[0];
        return;
    }
    expect_blobs(l, 2, 1);
    BlobShape a = in[0], b = in[1];
    const int dims = std::max(a.dims, b.dims);
    const auto expand = [dims](const BlobShape& s, const BlobShape& other) {
        if (s.dims == dims) return s;
        if (dims == 2) return s.w == other.h ? shape(2, 1, s.w) : shape(2, s.w, 1);
        if (dims == 3 && s.dims == 1) return s.w == other.c ? shape(3, 1, 1, 1, s.w) : shape(3, s.w, 1, 1, 1);
        if (dims == 3 && s.dims == 2) return shape(3, 1, s.w, 1, s.h);
        if (dims == 4 && s.dims == 1) return s.w == other.c ? shape(4, 1, 1, 1, s.w) : shape(4, s.w, 1, 1, 1);
        if (dims == 4 && s.dims == 2) return shape(4, 1, 1, s.w, s.h);
        return shape(4, 1, s.w, s.h, s.c);  // dims 4 from 3
    };
    const BlobShape ea = expand(a, b), eb = expand(b, a);
    const auto fits = [](int x, int y) { return x == y || x == 1 || y == 1; };
    if (!fits(ea.w, eb.w) || !fits(ea.h, eb.h) || !fits(ea.d, eb.d) || !fits(ea.c, eb.c))
        refuse(l, "combines " + a.str() + " with " + b.str() + ", which do not broadcast");
    out[0] = shape(dims, std::max(ea.w, eb.w), std::max(ea.h, eb.h), std::max(ea.d, eb.d), std::max(ea.c, eb.c));
}

void eltwise(const Layer& l, const Shapes& in, Shapes& out) {
    if (l.bottoms.empty() || l.tops.size() != 1) refuse(l, "needs inputs and one output");
    const int op = geti(l, 0, 0);
    if (op < 0 || op > 2) refuse(l, "has an unknown operation " + std::to_string(op));
    const std::size_t coeffs = l.params.get(1, ncnn::Mat()).w;
    if (coeffs != 0 && coeffs != l.bottoms.size())
        refuse(l, "has " + std::to_string(coeffs) + " coefficients for " + std::to_string(l.bottoms.size()) + " inputs");
    for (const BlobShape& s : in)
        if (!(s == in[0])) refuse(l, "adds " + in[0].str() + " and " + s.str() + ", which differ");
    out[0] = in[0];
}

// Axis index (ncnn order: outermost first) → a reference to that extent of a shape.
int& extent(BlobShape& s, int axis) {
    static const int order[5][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {3, 1, 0, 0}, {3, 2, 1, 0}};
    int* fields[4] = {&s.w, &s.h, &s.d, &s.c};
    return *fields[order[s.dims][axis]];
}

int positive_axis(const Layer& l, int axis, int dims) {
    const int a = axis < 0 ? axis + dims : axis;
    if (a < 0 || a >= dims) refuse(l, "has axis " + std::to_string(axis) + " for a " + std::to_string(dims) + "-D input");
    return a;
}

void concat(const Layer& l, const Shapes& in, Shapes& out) {
    if (l.bottoms.empty() || l.tops.size() != 1) refuse(l, "needs inputs and one output");
    const int axis = positive_axis(l, geti(l, 0, 0), in[0].dims);
    BlobShape joined = in[0];
    long long total = 0;
    for (const BlobShape& s : in) {
        BlobShape a = s, b = in[0];
        if (s.dims != in[0].dims) refuse(l, "joins " + in[0].str() + " and " + s.str() + ", which differ in rank");
        total += extent(a, axis);
        extent(a, axis) = extent(b, axis) = 1;
        if (!(a == b)) refuse(l, "joins " + in[0].str() + " and " + s.str() + ", which differ off its axis");
    }
    extent(joined, axis) = static_cast<int>(std::min(total, kMaxSide + 1));
    out[0] = joined;
    check_output(l, in[0], joined);
}

void slice(const Layer& l, const Shapes& in, Shapes& out) {
    if (l.bottoms.size() != 1 || l.tops.empty()) refuse(l, "needs one input and outputs");
    const BlobShape& x = in[0];
    const int axis = positive_axis(l, geti(l, 1, 0), x.dims);
    const std::vector<int> slices = get_ints(l, 0), indices = get_ints(l, 2);
    const std::size_t n = l.tops.size();
    if (indices.empty() && slices.size() < n) refuse(l, "has " + std::to_string(slices.size()) + " slice sizes for " + std::to_string(n) + " outputs");
    if (!indices.empty() && indices.size() + 1 < n) refuse(l, "has too few slice indices for its outputs");
    BlobShape s = x;
    const long long size = extent(s, axis);
    long long start = 0;
    for (std::size_t i = 0; i < n; ++i) {
        long long part;
        if (!indices.empty()) {
            const long long index = i + 1 == n ? size : indices[i] < 0 ? size + indices[i] : indices[i];
            part = index - start;
        } else {
            part = slices[i] == -233 ? (size - start) / static_cast<long long>(n - i) : slices[i];
        }
        if (part < 1 || start + part > size)
            refuse(l, "cuts slice " + std::to_string(i) + " outside " + x.str());
        BlobShape o = x;
        extent(o, axis) = static_cast<int>(part);
        out[i] = o;
        start += part;
    }
}

void crop(const Layer& l, const Shapes& in, Shapes& out) {
    if (!gets(l, 19).empty() || !gets(l, 20).empty() || !gets(l, 21).empty()) throw Unsupported{"crop expressions"};
    const BlobShape& x = in[0];
    if (x.dims < 1 || x.dims > 4) refuse(l, "gets " + x.str());
    const std::vector<int> starts = get_ints(l, 9), ends = get_ints(l, 10), axes = get_ints(l, 11);
    const int woffset = geti(l, 0, 0), hoffset = geti(l, 1, 0), doffset = geti(l, 13, 0), coffset = geti(l, 2, 0);
    const int outw = geti(l, 3, 0), outh = geti(l, 4, 0), outd = geti(l, 14, 0), outc = geti(l, 5, 0);
    const int woffset2 = geti(l, 6, 0), hoffset2 = geti(l, 7, 0), doffset2 = geti(l, 15, 0), coffset2 = geti(l, 8, 0);
    // Per axis (outermost first): offset and size of the kept part.
    int offset[4] = {0, 0, 0, 0}, size[4];
    BlobShape tmp = x;
    for (int a = 0; a < x.dims; ++a) size[a] = extent(tmp, a);
    const int full[4] = {size[0], size[1], size[2], size[3]};
    if (!starts.empty() && !ends.empty()) {  // numpy-style slice
        expect_blobs(l, 1, 1);
        if (ends.size() != starts.size() || (!axes.empty() && axes.size() != starts.size()))
            refuse(l, "has starts, ends and axes of different lengths");
        const std::size_t n = axes.empty() ? std::min<std::size_t>(starts.size(), x.dims) : axes.size();
        for (std::size_t i = 0; i < n; ++i) {
            const int a = axes.empty() ? static_cast<int>(i) : positive_axis(l, axes[i], x.dims);
            const long long dim = full[a];
            const long long start = starts[i] == -233 ? 0 : starts[i] >= 0 ? starts[i] : dim + starts[i];
            const long long end = ends[i] == -233 ? dim : ends[i] > 0 ? ends[i] : dim + ends[i];
            offset[a] = static_cast<int>(std::clamp(start, -1LL, kMaxSide));
            size[a] = static_cast<int>(std::clamp(std::min(dim, end) - start, -1LL, kMaxSide));
        }
    } else if (outw == 0 && outh == 0 && outd == 0 && outc == 0 && woffset2 == 0 && hoffset2 == 0 && doffset2 == 0 &&
               coffset2 == 0) {  // cut to the second input's size
        expect_blobs(l, 2, 1);
        if (woffset == -233) throw Unsupported{"crop offsets read from a blob"};
        const BlobShape& r = in[1];
        const int by_axis_offset[4][4] = {{woffset}, {hoffset, woffset}, {coffset, hoffset, woffset}, {coffset, doffset, hoffset, woffset}};
        const int ref_c = r.dims == x.dims ? r.c : x.c;
        const int by_axis_size[4][4] = {{r.w}, {r.h, r.w}, {ref_c, r.h, r.w}, {ref_c, r.d, r.h, r.w}};
        for (int a = 0; a < x.dims; ++a) offset[a] = by_axis_offset[x.dims - 1][a], size[a] = by_axis_size[x.dims - 1][a];
        if (x.dims == 3 && r.dims != 3) size[0] = x.c, offset[0] = coffset;
    } else {
        expect_blobs(l, 1, 1);
        const int o1[4][4] = {{woffset}, {hoffset, woffset}, {coffset, hoffset, woffset}, {coffset, doffset, hoffset, woffset}};
        const int o2[4][4] = {{woffset2}, {hoffset2, woffset2}, {coffset2, hoffset2, woffset2}, {coffset2, doffset2, hoffset2, woffset2}};
        const int cap[4][4] = {{outw}, {outh, outw}, {outc, outh, outw}, {outc, outd, outh, outw}};
        for (int a = 0; a < x.dims; ++a) {
            offset[a] = o1[x.dims - 1][a];
            long long s = static_cast<long long>(full[a]) - o1[x.dims - 1][a] - o2[x.dims - 1][a];
            if (cap[x.dims - 1][a] != -233) s = std::min<long long>(cap[x.dims - 1][a], s);
            size[a] = static_cast<int>(std::clamp(s, -1LL, kMaxSide));
        }
    }
    BlobShape o = x;
    for (int a = 0; a < x.dims; ++a) {
        if (offset[a] < 0 || size[a] < 1 || static_cast<long long>(offset[a]) + size[a] > full[a])
            refuse(l, "cuts " + std::to_string(size[a]) + " at offset " + std::to_string(offset[a]) + " of an axis of " +
                          std::to_string(full[a]) + " (input " + x.str() + ")");
        extent(o, a) = size[a];
    }
    out[0] = o;
}

void interp(const Layer& l, const Shapes& in, Shapes& out) {
    const int resize_type = geti(l, 0, 0);
    if (resize_type < 1 || resize_type > 3) refuse(l, "has an unknown resize type " + std::to_string(resize_type));
    const BlobShape& x = in[0];
    if (x.dims < 1 || x.dims > 3) refuse(l, "needs a 1-, 2- or 3-D input but gets " + x.str());
    long long outw, outh;
    const std::string size_expr = gets(l, 9);
    if (!size_expr.empty()) {
        if (l.tops.size() != 1) refuse(l, "needs one output");
        const std::vector<long long> sizes = eval_expression(l, size_expr, in);
        if (sizes.empty() || sizes.size() > 2) refuse(l, "has a size expression of " + std::to_string(sizes.size()) + " values");
        outw = sizes[0];
        outh = sizes.size() == 2 ? sizes[1] : x.h;
    } else if (geti(l, 5, 0)) {  // dynamic target size: the second input's
        expect_blobs(l, 2, 1);
        outw = in[1].w, outh = in[1].h;
    } else {
        expect_blobs(l, 1, 1);
        outw = geti(l, 4, 0), outh = geti(l, 3, 0);
        if (outw == 0 || outh == 0) {
            const int w = x.dims == 1 ? 1 : x.w, h = x.dims == 1 ? 1 : x.h;
            const float ws = getf(l, 2, 1.f), hs = getf(l, 1, 1.f);
            if (!(std::fabs(ws) < 1e6f) || !(std::fabs(hs) < 1e6f)) refuse(l, "has a scale out of range");
            outw = static_cast<long long>(w * ws), outh = static_cast<long long>(h * hs);
        }
    }
    out[0] = x.dims == 1 ? shape(3, outw, outh, 1, x.w) : x.dims == 2 ? shape(2, outw, x.h) : shape(3, outw, outh, 1, x.c);
    check_output(l, x, out[0]);
}

void reshape(const Layer& l, const Shapes& in, Shapes& out) {
    const BlobShape& x = in[0];
    long long w = geti(l, 0, -233), h = geti(l, 1, -233), d = geti(l, 11, -233), c = geti(l, 2, -233);
    if (geti(l, 12, 233) != 233 || geti(l, 13, 233) != 233) throw Unsupported{"batch axes"};
    int ndim = 4;
    if (d == -233) ndim = 3;
    if (c == -233) ndim = 2;
    if (h == -233) ndim = 1;
    if (w == -233) ndim = 0;
    const std::string expr = gets(l, 6);
    if (!expr.empty()) {
        if (l.bottoms.empty() || l.tops.size() != 1) refuse(l, "needs inputs and one output");
        const std::vector<long long> v = eval_expression(l, expr, in);
        ndim = static_cast<int>(v.size());
        if (ndim < 1 || ndim > 4) refuse(l, "has a shape expression of " + std::to_string(ndim) + " values");
        w = h = d = c = 1;
        w = v[0];
        if (ndim >= 2) h = v[1];
        if (ndim == 3) c = v[2];
        if (ndim == 4) d = v[2], c = v[3];
    } else {
        expect_blobs(l, 1, 1);
    }
    if (ndim < 1) refuse(l, "has no target shape");
    const long long total = x.total();
    // 0 keeps the input's extent, -1 takes what is left (ncnn resolves them in this order).
    if (w == 0) w = x.w;
    if (ndim >= 2 && h == 0) h = x.h;
    if (ndim >= 3 && c == 0) c = x.c;
    if (ndim == 4 && d == 0) d = x.d;
    if (ndim < 2) h = 1;
    if (ndim < 3) c = 1;
    if (ndim < 4) d = 1;
    const int unknowns = (w == -1) + (h == -1) + (d == -1) + (c == -1);
    if (unknowns > 1) refuse(l, "leaves more than one extent to infer");
    const long long known = std::max(1LL, w) * std::max(1LL, h) * std::max(1LL, d) * std::max(1LL, c);
    if (unknowns == 1) {
        const long long rest = known > 0 && total % known == 0 ? total / known : -2;
        (w == -1 ? w : h == -1 ? h : d == -1 ? d : c) = rest;
    }
    if (w < 1 || h < 1 || d < 1 || c < 1 || w * h * d * c != total)
        refuse(l, "reshapes " + x.str() + " (" + std::to_string(total) + " values) into " + std::to_string(c) + "x" +
                      std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(w));
    out[0] = shape(ndim, w, h, d, c);
}

void permute(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const BlobShape& x = in[0];
    const int order = geti(l, 0, 0);
    if (x.dims == 1) {
        out[0] = x;
        return;
    }
    if (x.dims == 2 && (order == 0 || order == 1)) {
        out[0] = order == 0 ? x : shape(2, x.h, x.w);
        return;
    }
    if (x.dims == 3 && order >= 0 && order <= 5) {
        const int table[6][3] = {{x.w, x.h, x.c}, {x.h, x.w, x.c}, {x.w, x.c, x.h}, {x.c, x.w, x.h}, {x.h, x.c, x.w}, {x.c, x.h, x.w}};
        out[0] = shape(3, table[order][0], table[order][1], 1, table[order][2]);
        return;
    }
    if (x.dims == 4) throw Unsupported{"4-D permutes"};
    refuse(l, "has order " + std::to_string(order) + " for " + x.str());
}

void padding(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const BlobShape& x = in[0];
    const int top = geti(l, 0, 0), bottom = geti(l, 1, 0), left = geti(l, 2, 0), right = geti(l, 3, 0);
    const int type = geti(l, 4, 0), per_channel = geti(l, 6, 0), front = geti(l, 7, 0), behind = geti(l, 8, 0);
    if (top < 0 || bottom < 0 || left < 0 || right < 0 || front < 0 || behind < 0) refuse(l, "has a negative padding");
    if (type < 0 || type > 2) refuse(l, "has an unknown padding type " + std::to_string(type));
    if (x.dims < 1 || x.dims > 4) refuse(l, "gets " + x.str());
    // Replicate and reflect read inside the input: the padding must fit in it.
    if (type != 0) {
        const int limit_w = type == 2 ? x.w - 1 : x.w, limit_h = type == 2 ? x.h - 1 : x.h;
        if (left > limit_w || right > limit_w || (x.dims >= 2 && (top > limit_h || bottom > limit_h)) || front || behind)
            refuse(l, "pads " + x.str() + " by more than it can replicate or reflect");
    }
    const long long outw = static_cast<long long>(x.w) + left + right;
    const long long outh = x.dims >= 2 ? static_cast<long long>(x.h) + top + bottom : 1;
    BlobShape o;
    if (x.dims == 1) o = shape(1, outw);
    if (x.dims == 2) o = shape(2, outw, outh);
    if (x.dims == 3) o = shape(3, outw, outh, 1, static_cast<long long>(x.c) + front + behind);
    if (x.dims == 4) o = shape(4, outw, outh, static_cast<long long>(x.d) + front + behind, x.c);
    if (per_channel && (x.dims < 3 || per_channel != (x.dims == 3 ? o.c : x.c)))
        refuse(l, "has " + std::to_string(per_channel) + " per-channel pad values for " + o.str());
    out[0] = o;
    check_output(l, x, o);
}

void reduction(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const BlobShape& x = in[0];
    const bool all = geti(l, 1, 1) != 0, keep = geti(l, 4, 0) != 0;
    bool reduce[4] = {all, all, all, all};  // per axis, outermost first
    if (!all)
        for (int axis : get_ints(l, 3)) reduce[positive_axis(l, axis, x.dims)] = true;
    if (x.dims == 1) reduce[0] = true;
    BlobShape o = x;
    std::vector<int> kept;
    for (int a = 0; a < x.dims; ++a) {
        if (reduce[a]) extent(o, a) = 1;
        else kept.push_back(extent(o, a));
    }
    if (keep) {
        out[0] = o;
        return;
    }
    const int n = static_cast<int>(kept.size());
    if (n == 0) out[0] = shape(1, 1);  // ncnn keeps one value
    if (n == 1) out[0] = shape(1, kept[0]);
    if (n == 2) out[0] = shape(2, kept[1], kept[0]);
    if (n == 3) out[0] = shape(3, kept[2], kept[1], 1, kept[0]);
    if (n == 4) out[0] = shape(4, kept[3], kept[2], kept[1], kept[0]);
}

void softmax(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    positive_axis(l, geti(l, 0, 0), in[0].dims);
    out[0] = in[0];
}

void same_shape(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    out[0] = in[0];
}

void split(const Layer& l, const Shapes& in, Shapes& out) {
    if (l.bottoms.size() != 1 || l.tops.empty()) refuse(l, "needs one input and outputs");
    for (BlobShape& o : out) o = in[0];
}

void per_channel(const Layer& l, const Shapes& in, Shapes& out, int size_id, const char* what, bool one_allowed) {
    expect_blobs(l, 1, 1);
    check_per_channel(l, in[0], geti(l, size_id, 0), what, one_allowed);
    out[0] = in[0];
}

void scale(const Layer& l, const Shapes& in, Shapes& out) {
    const int size = geti(l, 0, 0);
    if (size == -233) {  // the scale is the second input
        expect_blobs(l, 2, 1);
        const BlobShape& s = in[1];
        if (s.total() != channel_axis(in[0]) || s.dims > 1)
            refuse(l, "scales " + in[0].str() + " by " + s.str());
    } else {
        expect_blobs(l, 1, 1);
        check_per_channel(l, in[0], size, "scales", false);
    }
    out[0] = in[0];
}

void quantize_like(const Layer& l, const Shapes& in, Shapes& out, std::initializer_list<std::pair<int, int>> sizes) {
    expect_blobs(l, 1, 1);
    for (const auto& [id, def] : sizes) {
        const int n = geti(l, id, def);
        if (n) check_per_channel(l, in[0], n, "scales or biases", true);
    }
    out[0] = in[0];
}

void flatten(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    out[0] = shape(1, in[0].total());
    check_output(l, in[0], out[0]);
}

void memory_data(const Layer& l, const Shapes&, Shapes& out) {
    expect_blobs(l, 0, 1);
    const int w = geti(l, 0, 0), h = geti(l, 1, 0), d = geti(l, 11, 0), c = geti(l, 2, 0);
    const int dims = d ? 4 : c ? 3 : h ? 2 : 1;
    out[0] = shape(dims, std::max(w, 1), std::max(h, 1), std::max(d, 1), std::max(c, 1));
    check_output(l, out[0], out[0]);
}

void shuffle_channel(const Layer& l, const Shapes& in, Shapes& out) {
    expect_blobs(l, 1, 1);
    const int group = geti(l, 0, 1);
    if (in[0].dims != 3 || group < 1 || in[0].c % group) refuse(l, "shuffles " + in[0].str() + " in " + std::to_string(group) + " groups");
    out[0] = in[0];
}

using ShapeFn = std::function<void(const Layer&, const Shapes&, Shapes&)>;

const std::map<std::string, ShapeFn>& shape_functions() {
    static const std::map<std::string, ShapeFn> fns = [] {
        std::map<std::string, ShapeFn> m;
        m["Convolution"] = [](const Layer& l, const Shapes& i, Shapes& o) { convolution(l, i, o, false); };
        m["ConvolutionDepthWise"] = [](const Layer& l, const Shapes& i, Shapes& o) { convolution(l, i, o, true); };
        m["Deconvolution"] = [](const Layer& l, const Shapes& i, Shapes& o) { deconvolution(l, i, o, false); };
        m["DeconvolutionDepthWise"] = [](const Layer& l, const Shapes& i, Shapes& o) { deconvolution(l, i, o, true); };
        m["InnerProduct"] = inner_product;
        m["Pooling"] = pooling;
        m["BinaryOp"] = binary_op;
        m["Eltwise"] = eltwise;
        m["Concat"] = concat;
        m["Slice"] = slice;
        m["Split"] = split;
        m["Crop"] = crop;
        m["Interp"] = interp;
        m["Reshape"] = reshape;
        m["Flatten"] = flatten;
        m["Permute"] = permute;
        m["Padding"] = padding;
        m["Reduction"] = reduction;
        m["Softmax"] = softmax;
        m["BatchNorm"] = [](const Layer& l, const Shapes& i, Shapes& o) { per_channel(l, i, o, 0, "channels", false); };
        m["InstanceNorm"] = [](const Layer& l, const Shapes& i, Shapes& o) { per_channel(l, i, o, 0, "channels", false); };
        m["PReLU"] = [](const Layer& l, const Shapes& i, Shapes& o) { per_channel(l, i, o, 0, "slopes", true); };
        m["Bias"] = [](const Layer& l, const Shapes& i, Shapes& o) { per_channel(l, i, o, 0, "biases", false); };
        m["Scale"] = scale;
        m["Quantize"] = [](const Layer& l, const Shapes& i, Shapes& o) { quantize_like(l, i, o, {{0, 1}}); };
        m["Dequantize"] = [](const Layer& l, const Shapes& i, Shapes& o) { quantize_like(l, i, o, {{0, 1}, {1, 0}}); };
        m["Requantize"] = [](const Layer& l, const Shapes& i, Shapes& o) { quantize_like(l, i, o, {{0, 1}, {1, 1}, {2, 0}}); };
        m["MemoryData"] = memory_data;
        m["ShuffleChannel"] = shuffle_channel;
        for (const char* t : {"AbsVal", "BNLL", "CELU", "Clip", "Dropout", "ELU", "Erf", "Exp", "GELU", "HardSigmoid",
                              "HardSwish", "Log", "Mish", "Power", "ReLU", "SELU", "Sigmoid", "Softplus", "Swish",
                              "TanH", "UnaryOp"})
            m[t] = same_shape;
        return m;
    }();
    return fns;
}

}  // namespace

GraphCheck::GraphCheck(const ncnn::Net& net, const std::string& param_text) {
    for (const ncnn::Blob& b : net.blobs()) blob_names_.push_back(b.name);
    // Walk the text exactly as ncnn's Net::load_param did: magic, counts, then per layer its
    // header tokens and the rest of its line as parameters.
    const unsigned char* mem = reinterpret_cast<const unsigned char*>(param_text.c_str());
    const ncnn::DataReaderFromMemory dr(mem);
    int magic = 0, layer_count = 0, blob_count = 0;
    const auto unreadable = [] {
        return Error(ErrorCode::ModelFormat, "the param file could not be read back the way ncnn read it");
    };
    if (dr.scan("%d", &magic) != 1 || dr.scan("%d", &layer_count) != 1 || dr.scan("%d", &blob_count) != 1) throw unreadable();
    const std::vector<ncnn::Layer*>& layers = net.layers();
    std::vector<int> consumer(blob_names_.size(), -1);
    if (layer_count != static_cast<int>(layers.size())) throw unreadable();
    for (const ncnn::Layer* nl : layers) {
        char type[256] = {0}, name[256] = {0}, blob[256];
        int bottoms = 0, tops = 0;
        if (dr.scan("%255s", type) != 1 || dr.scan("%255s", name) != 1 || dr.scan("%d", &bottoms) != 1 ||
            dr.scan("%d", &tops) != 1)
            throw unreadable();
        for (int i = 0; i < bottoms + tops; ++i)
            if (dr.scan("%255s", blob) != 1) throw unreadable();
        ParamText params;
        if (params.load_param(dr) != 0 || nl->type != type || nl->name != name ||
            static_cast<int>(nl->bottoms.size()) != bottoms || static_cast<int>(nl->tops.size()) != tops)
            throw unreadable();
        layers_.push_back({type, name, nl->bottoms, nl->tops, params});
        // ncnn frees a blob once its (one recorded) consumer ran: a second reader gets an empty
        // blob, which the layers read as if it held data. Converters route shared blobs through
        // Split; a graph that does not is refused.
        for (int b : nl->bottoms) {
            if (b < 0 || b >= static_cast<int>(consumer.size())) throw unreadable();
            if (consumer[b] >= 0 && consumer[b] != static_cast<int>(layers_.size()) - 1)
                throw Error(ErrorCode::ModelFormat, "blob '" + blob_names_[b] + "' feeds both layer '" +
                                                        layers_[consumer[b]].name + "' and layer '" + name +
                                                        "' without a Split: the model file is malformed");
            consumer[b] = static_cast<int>(layers_.size()) - 1;
        }
        if (!shape_functions().count(type) && type != std::string("Input") &&
            std::find(unknown_types_.begin(), unknown_types_.end(), type) == unknown_types_.end())
            unknown_types_.push_back(type);
    }
}

namespace {

// Notes whether a layer's type-0 weight loads (those ncnn reads a storage tag for: float, fp16,
// int8, quantization table) produced int8 data.
class StorageRecorder : public ncnn::ModelBin {
public:
    explicit StorageRecorder(const ncnn::DataReader& dr) : bin_(dr) {}
    ncnn::Mat load(int w, int type) const override {
        ncnn::Mat m = bin_.load(w, type);
        if (type == 0 && !m.empty() && m.elemsize == 1) int8 = true;
        return m;
    }
    mutable bool int8 = false;

private:
    ncnn::ModelBinFromDataReader bin_;
};

// The layers whose int8 pipelines ncnn builds from the scales they load when 8= is set.
bool declares_int8_scales(const Layer& l) {
    return (l.type == "Convolution" || l.type == "ConvolutionDepthWise" || l.type == "InnerProduct") &&
           l.params.get(8, 0) != 0;
}

}  // namespace

void GraphCheck::check_weight_storage(const ncnn::DataReader& weights) const {
    StorageRecorder bin(weights);
    for (const Layer& l : layers_) {
        const std::unique_ptr<ncnn::Layer> layer(ncnn::create_layer_naive(l.type.c_str()));
        if (!layer) return;
        bin.int8 = false;
        if (layer->load_param(l.params) != 0 || layer->load_model(bin) != 0)
            throw Error(ErrorCode::ModelFormat, "layer '" + l.name + "' (" + l.type +
                                                    ") could not load its weights: they are truncated or do not "
                                                    "match the param file");
        const bool unknown = std::find(unknown_types_.begin(), unknown_types_.end(), l.type) != unknown_types_.end();
        if (bin.int8 && !unknown && !declares_int8_scales(l))
            throw Error(ErrorCode::ModelFormat, "layer '" + l.name + "' (" + l.type +
                                                    ") has weights stored as int8 but its parameters declare no "
                                                    "int8 scales (8=): a malformed model file");
    }
}

std::vector<BlobShape> GraphCheck::propagate(const std::vector<std::pair<std::string, BlobShape>>& inputs,
                                             bool allow_unchecked) const {
    std::vector<BlobShape> shapes(blob_names_.size());
    // Blobs that an unknown or unmodelled layer produced: their consumers cannot be checked.
    std::vector<bool> opaque(blob_names_.size(), false);
    for (const Layer& l : layers_) {
        for (int b : l.bottoms)
            if (b < 0 || b >= static_cast<int>(shapes.size())) refuse(l, "names a blob that does not exist");
        for (int t : l.tops)
            if (t < 0 || t >= static_cast<int>(shapes.size())) refuse(l, "names a blob that does not exist");
        if (l.type == "Input") {
            for (int t : l.tops)
                for (const auto& [name, s] : inputs)
                    if (blob_names_[t] == name) shapes[t] = s;
            continue;
        }
        bool skip = false;
        Shapes in;
        for (int b : l.bottoms) {
            skip = skip || opaque[b];
            if (!opaque[b] && shapes[b].dims == 0)
                refuse(l, "reads blob '" + blob_names_[b] + "', which nothing before it sets");
            in.push_back(shapes[b]);
        }
        const auto fn = shape_functions().find(l.type);
        if (skip || fn == shape_functions().end()) {
            for (int t : l.tops) opaque[t] = true;
            continue;
        }
        Shapes out(l.tops.size());
        try {
            if (in.empty() && l.type != "MemoryData") refuse(l, "has no input");
            fn->second(l, in, out);
        } catch (const Unsupported& u) {
            if (!allow_unchecked)
                throw Error(ErrorCode::ModelFormat, "layer '" + l.name + "' (" + l.type + ") uses " + u.why +
                                                        ", which fastface cannot shape-check; allow unknown layers to "
                                                        "load it unchecked");
            for (int t : l.tops) opaque[t] = true;
            continue;
        }
        for (std::size_t i = 0; i < l.tops.size(); ++i) shapes[l.tops[i]] = out[i];
    }
    return shapes;
}

}  // namespace fastface
