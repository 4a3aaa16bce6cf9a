// pybind11 bindings: fastface._core. Thin by design — shapes and dtypes are checked here,
// everything else happens in the C++ core with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "fastface/fastface.h"

namespace py = pybind11;
using namespace fastface;

namespace {

PixelFormat parse_format(const std::string& name) {
    if (name == "BGR") return PixelFormat::BGR;
    if (name == "RGB") return PixelFormat::RGB;
    if (name == "GRAY") return PixelFormat::Gray;
    throw Error(ErrorCode::InvalidArgument, "channel order must be 'BGR', 'RGB' or 'GRAY', got '" + name + "'");
}

// A uint8 image of shape (H, W) or (H, W, C) with packed pixels and any row stride.
ImageView image_view(const py::array& image, const std::string& color_order) {
    if (!image.dtype().is(py::dtype::of<std::uint8_t>()))
        throw Error(ErrorCode::InvalidArgument, "image must be uint8, got " + std::string(py::str(image.dtype())));
    if (image.ndim() != 2 && image.ndim() != 3)
        throw Error(ErrorCode::InvalidArgument, "image must be HxW or HxWxC, got " + std::to_string(image.ndim()) + " dimensions");
    const int channels = image.ndim() == 3 ? static_cast<int>(image.shape(2)) : 1;
    if (channels != 1 && channels != 3)
        throw Error(ErrorCode::InvalidArgument, "image must have 1 or 3 channels, got " + std::to_string(channels));
    ImageView view;
    view.data = static_cast<const std::uint8_t*>(image.data());
    view.height = static_cast<int>(image.shape(0));
    view.width = static_cast<int>(image.shape(1));
    view.format = channels == 1 ? PixelFormat::Gray : parse_format(color_order);
    view.row_stride = image.strides(0);
    // A length-1 channel axis is never stepped: numpy may give it any stride (gray[..., None]: 0).
    if ((channels == 3 && image.strides(2) != 1) || image.strides(1) != channels || view.row_stride < 0)
        throw Error(ErrorCode::InvalidArgument, "image pixels must be packed with a positive row stride (use np.ascontiguousarray)");
    validate(view);
    return view;
}

std::vector<Point2f> points(const py::array_t<float, py::array::c_style | py::array::forcecast>& a, const char* what) {
    if (a.ndim() != 2 || a.shape(1) != 2)
        throw Error(ErrorCode::InvalidArgument, std::string(what) + " must have shape (N, 2)");
    std::vector<Point2f> out(static_cast<std::size_t>(a.shape(0)));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = {a.at(i, 0), a.at(i, 1)};
    return out;
}

Affine affine(const py::array_t<double, py::array::c_style | py::array::forcecast>& m) {
    if (m.ndim() != 2 || m.shape(0) != 2 || m.shape(1) != 3)
        throw Error(ErrorCode::InvalidArgument, "matrix must have shape (2, 3)");
    Affine out;
    for (int i = 0; i < 6; ++i) out[i] = m.data()[i];
    return out;
}

using FloatMatrix = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::size_t rows_of(const FloatMatrix& a, const char* what, std::size_t& dim) {
    if (a.ndim() != 2) throw Error(ErrorCode::InvalidArgument, std::string(what) + " must be 2-D (N, D)");
    dim = static_cast<std::size_t>(a.shape(1));
    return static_cast<std::size_t>(a.shape(0));
}

InputNorm input_norm(const std::string& order, const std::array<float, 3>& mean, const std::array<float, 3>& scale) {
    InputNorm norm;
    norm.order = parse_format(order);
    norm.mean = mean;
    norm.scale = scale;
    return norm;
}

py::array_t<std::uint8_t> u8_image(int height, int width, int channels) {
    if (channels == 1) return py::array_t<std::uint8_t>({height, width});
    return py::array_t<std::uint8_t>({height, width, channels});
}

// Faces from (N, 4) boxes, (N,) scores and (N, 5, 2) landmarks, as fastface.Detector returns them.
std::vector<Face> faces_from_arrays(const py::array_t<float, py::array::c_style | py::array::forcecast>& boxes,
                                    const py::array_t<float, py::array::c_style | py::array::forcecast>& scores,
                                    const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks) {
    const std::size_t n = boxes.ndim() == 2 ? static_cast<std::size_t>(boxes.shape(0)) : 0;
    if (boxes.ndim() != 2 || boxes.shape(1) != 4)
        throw Error(ErrorCode::InvalidArgument, "boxes must have shape (N, 4)");
    if (scores.ndim() != 1 || static_cast<std::size_t>(scores.shape(0)) != n)
        throw Error(ErrorCode::InvalidArgument, "scores must have shape (N,) for N boxes");
    if (landmarks.ndim() != 3 || static_cast<std::size_t>(landmarks.shape(0)) != n || landmarks.shape(1) != 5 ||
        landmarks.shape(2) != 2)
        throw Error(ErrorCode::InvalidArgument, "landmarks must have shape (N, 5, 2) for N boxes");
    std::vector<Face> faces(n);
    for (std::size_t i = 0; i < n; ++i) {
        Face& f = faces[i];
        f.x1 = boxes.at(i, 0);
        f.y1 = boxes.at(i, 1);
        f.x2 = boxes.at(i, 2);
        f.y2 = boxes.at(i, 3);
        f.score = scores.at(i);
        for (int k = 0; k < 5; ++k) f.landmarks[k] = {landmarks.at(i, k, 0), landmarks.at(i, k, 1)};
    }
    return faces;
}

py::dict track_dict(const Track& t) {
    py::array_t<float> box(4), landmarks({5, 2});
    box.mutable_at(0) = t.face.x1;
    box.mutable_at(1) = t.face.y1;
    box.mutable_at(2) = t.face.x2;
    box.mutable_at(3) = t.face.y2;
    for (int k = 0; k < 5; ++k) {
        landmarks.mutable_at(k, 0) = t.face.landmarks[k].x;
        landmarks.mutable_at(k, 1) = t.face.landmarks[k].y;
    }
    py::dict d;
    d["id"] = t.id;
    d["bbox"] = box;
    d["landmarks"] = landmarks;
    d["velocity"] = py::make_tuple(t.vx, t.vy);
    d["detected"] = t.detected();
    d["missed"] = t.missed();
    d["first_frame"] = t.first_frame;
    d["hits"] = t.hits;
    d["quality"] = t.quality;
    d["embeddings"] = t.embeddings;
    d["name"] = t.name;
    d["score"] = t.score;
    return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastface C++ core: alignment, ncnn embedding and cosine matching";

    static py::exception<Error> model_error(m, "ModelError", PyExc_ValueError);
    model_error.attr("__doc__") = "A model file ncnn cannot load, or one that does not fit its card or decoder.";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Error& e) {
            switch (e.code()) {
                case ErrorCode::InvalidArgument: PyErr_SetString(PyExc_ValueError, e.what()); return;
                case ErrorCode::Io: PyErr_SetString(PyExc_OSError, e.what()); return;
                case ErrorCode::ModelFormat: model_error(e.what()); return;
                case ErrorCode::Runtime: PyErr_SetString(PyExc_RuntimeError, e.what()); return;
            }
        }
    });

    m.def("available_isas", [] {
        std::vector<std::string> names;
        for (Isa isa : available_isas()) names.emplace_back(isa_name(isa));
        return names;
    }, "Instruction sets this CPU can run, scalar first, best last.");
    m.def("best_isa", [] { return std::string(isa_name(best_isa())); });

    m.def("arcface_template", [](int width, int height) {
        py::array_t<float> out({5, 2});
        const std::vector<Point2f> t = arcface_template(width, height);
        for (int i = 0; i < 5; ++i) {
            out.mutable_at(i, 0) = t[i].x;
            out.mutable_at(i, 1) = t[i].y;
        }
        return out;
    }, py::arg("width") = 112, py::arg("height") = 112);

    m.def("estimate_similarity", [](const py::array_t<float, py::array::c_style | py::array::forcecast>& src,
                                    const py::array_t<float, py::array::c_style | py::array::forcecast>& dst) {
        const Affine a = estimate_similarity(points(src, "source points"), points(dst, "destination points"));
        py::array_t<double> out({2, 3});
        for (int i = 0; i < 6; ++i) out.mutable_data()[i] = a[i];
        return out;
    }, py::arg("src"), py::arg("dst"));

    m.def("dlib_chip_geometry", [](const py::array_t<float, py::array::c_style | py::array::forcecast>& pts,
                                   const py::array_t<float, py::array::c_style | py::array::forcecast>& chip_template,
                                   int width, int height) {
        const Affine a = dlib_chip_geometry(points(pts, "points"), points(chip_template, "chip template"), width, height);
        py::array_t<double> out({2, 3});
        for (int i = 0; i < 6; ++i) out.mutable_data()[i] = a[i];
        return out;
    }, py::arg("points"), py::arg("chip_template"), py::arg("width"), py::arg("height"));

    m.def("invert_affine", [](const py::array_t<double, py::array::c_style | py::array::forcecast>& matrix) {
        const Affine a = invert_affine(affine(matrix));
        py::array_t<double> out({2, 3});
        for (int i = 0; i < 6; ++i) out.mutable_data()[i] = a[i];
        return out;
    }, py::arg("matrix"));

    m.def("validate_landmarks", [](const py::array& image, const std::string& order,
                                   const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks) {
        validate_landmarks(image_view(image, order), points(landmarks, "landmarks"));
    }, py::arg("image"), py::arg("order"), py::arg("landmarks"));

    m.def("warp_u8", [](const py::array& image, const std::string& order,
                        const py::array_t<double, py::array::c_style | py::array::forcecast>& dst_to_src, int width,
                        int height, int border, const std::string& isa) {
        const ImageView view = image_view(image, order);
        if (border < 0 || border > 255) throw Error(ErrorCode::InvalidArgument, "border value must be 0..255");
        WarpParams params{affine(dst_to_src), width, height, static_cast<std::uint8_t>(border)};
        if (width <= 0 || height <= 0) throw Error(ErrorCode::InvalidArgument, "output size must be positive");
        py::array_t<std::uint8_t> out = u8_image(height, width, view.channels());
        std::uint8_t* dst = out.mutable_data();
        const Isa which = isa.empty() ? best_isa() : isa_from_name(isa);
        py::gil_scoped_release release;
        warp_to_u8(view, params, dst, which);
        return out;
    }, py::arg("image"), py::arg("order"), py::arg("dst_to_src"), py::arg("width"), py::arg("height"),
       py::arg("border") = 0, py::arg("isa") = "",
       "Bilinear warp to a uint8 crop; dst_to_src maps output pixels to source pixels.");

    m.def("warp_planar", [](const py::array& image, const std::string& order,
                            const py::array_t<double, py::array::c_style | py::array::forcecast>& dst_to_src, int width,
                            int height, const std::string& net_order, std::array<float, 3> mean,
                            std::array<float, 3> scale, int border, const std::string& isa) {
        const ImageView view = image_view(image, order);
        if (border < 0 || border > 255) throw Error(ErrorCode::InvalidArgument, "border value must be 0..255");
        if (width <= 0 || height <= 0) throw Error(ErrorCode::InvalidArgument, "output size must be positive");
        WarpParams params{affine(dst_to_src), width, height, static_cast<std::uint8_t>(border)};
        const InputNorm norm = input_norm(net_order, mean, scale);
        const int channels = channel_count(norm.order);
        py::array_t<float> out({channels, height, width});
        float* planes[3];
        for (int c = 0; c < channels; ++c) planes[c] = out.mutable_data() + static_cast<std::ptrdiff_t>(c) * width * height;
        const Isa which = isa.empty() ? best_isa() : isa_from_name(isa);
        py::gil_scoped_release release;
        warp_to_planar(view, params, norm, planes, which);
        return out;
    }, py::arg("image"), py::arg("order"), py::arg("dst_to_src"), py::arg("width"), py::arg("height"),
       py::arg("net_order"), py::arg("mean"), py::arg("scale"), py::arg("border") = 0, py::arg("isa") = "",
       "Bilinear warp fused with channel reorder and (x - mean) * scale, to planar float (C, H, W).");

    m.def("check_model_shapes", [](const py::bytes& param, const std::vector<std::tuple<std::string, int, int, int>>& inputs,
                                   bool allow_unknown_layers) {
        std::vector<ModelInput> in;
        for (const auto& [name, w, h, c] : inputs) in.push_back({name, w, h, c});
        const std::string text = param;
        std::vector<BlobShapeInfo> shapes;
        {
            py::gil_scoped_release release;
            shapes = check_model_shapes(text, in, allow_unknown_layers);
        }
        py::dict out;
        for (const BlobShapeInfo& s : shapes)
            out[py::str(s.name)] = s.dims == 0 ? py::object(py::none()) : py::object(py::make_tuple(s.dims, s.w, s.h, s.d, s.c));
        return out;
    }, py::arg("param"), py::arg("inputs"), py::arg("allow_unknown_layers") = false,
       "Every blob's (dims, w, h, d, c) for inputs [(name, w, h, c)], without running the model; None where not "
       "known. Raises ModelError for a layer its input does not fit.");

    m.def("cosine_matrix", [](const FloatMatrix& queries, const FloatMatrix& gallery, int threads, const std::string& isa) {
        std::size_t dq = 0, dg = 0;
        const std::size_t nq = rows_of(queries, "queries", dq), n = rows_of(gallery, "gallery", dg);
        if (dq != dg) throw Error(ErrorCode::InvalidArgument, "dimension mismatch: queries have " + std::to_string(dq) +
                                                                  ", gallery has " + std::to_string(dg));
        py::array_t<float> out({nq, n});
        float* dst = out.mutable_data();
        const Isa which = isa.empty() ? best_isa() : isa_from_name(isa);
        py::gil_scoped_release release;
        cosine_matrix(queries.data(), nq, gallery.data(), n, dq, dst, threads, which);
        return out;
    }, py::arg("queries"), py::arg("gallery"), py::arg("threads") = 0, py::arg("isa") = "");

    m.def("search", [](const FloatMatrix& queries, const FloatMatrix& gallery, std::int64_t k, int threads,
                       bool unit_rows, const std::string& isa) {
        std::size_t dq = 0, dg = 0;
        const std::size_t nq = rows_of(queries, "queries", dq), n = rows_of(gallery, "gallery", dg);
        if (dq != dg) throw Error(ErrorCode::InvalidArgument, "dimension mismatch: queries have " + std::to_string(dq) +
                                                                  ", gallery has " + std::to_string(dg));
        if (k <= 0 || static_cast<std::size_t>(k) > n)
            throw Error(ErrorCode::InvalidArgument, "k must be between 1 and the gallery size " + std::to_string(n) +
                                                        ", got " + std::to_string(k));
        py::array_t<std::int64_t> index({nq, static_cast<std::size_t>(k)});
        py::array_t<float> score({nq, static_cast<std::size_t>(k)});
        std::int64_t* index_out = index.mutable_data();
        float* score_out = score.mutable_data();
        const Isa which = isa.empty() ? best_isa() : isa_from_name(isa);
        {
            py::gil_scoped_release release;
            search(queries.data(), nq, gallery.data(), n, dq, static_cast<std::size_t>(k), index_out, score_out, threads,
                   unit_rows, which);
        }
        return py::make_tuple(index, score);
    }, py::arg("queries"), py::arg("gallery"), py::arg("k"), py::arg("threads") = 0, py::arg("unit_rows") = false,
       py::arg("isa") = "");

    // Gallery rows in their stored precision (fastface.Gallery keeps one per gallery).
    py::class_<GalleryIndex>(m, "GalleryIndex", "Embeddings in float32/float16/int8 with a label each, searched by cosine.")
        .def(py::init([](std::size_t dim, const std::string& precision) {
            return std::make_unique<GalleryIndex>(dim, precision_from_name(precision));
        }), py::arg("dim"), py::arg("precision"))
        .def_static("encode", [](const FloatMatrix& rows, const std::string& precision) {
            std::size_t dim = 0;
            const std::size_t n = rows_of(rows, "rows", dim);
            const Precision p = precision_from_name(precision);
            py::array encoded(py::dtype(precision), std::vector<py::ssize_t>{static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)});
            py::array_t<float> scales(n);
            void* out = encoded.mutable_data();
            float* scale_out = scales.mutable_data();
            {
                py::gil_scoped_release release;
                GalleryIndex::encode(p, rows.data(), n, dim, out, scale_out);
            }
            return py::make_tuple(encoded, scales);
        }, py::arg("rows"), py::arg("precision"),
           "Normalize (N, D) float rows and convert them: (rows in the precision's dtype, (N,) float32 scales).")
        .def("add_encoded", [](GalleryIndex& self, const py::array& given, const py::object& given_scales,
                               const py::object& given_labels) {
            // Arrays read from a database or file buffer may start at any byte: copy those to
            // aligned ones (the core reads them as float / uint16 / int32).
            const py::object require = py::module_::import("numpy").attr("require");
            const py::array rows = require(given, py::none(), "A");
            const auto labels = require(given_labels, "int32", "CA").cast<py::array_t<std::int32_t>>();
            const py::object scales = given_scales.is_none() ? given_scales : require(given_scales, "float32", "CA");
            const char* name = precision_name(self.precision());
            if (std::string(py::str(rows.dtype())) != name || rows.ndim() != 2 || static_cast<std::size_t>(rows.shape(1)) != self.dim())
                throw Error(ErrorCode::InvalidArgument, "rows must be (N, " + std::to_string(self.dim()) + ") " + name);
            if (!(rows.flags() & py::array::c_style)) throw Error(ErrorCode::InvalidArgument, "rows must be C-contiguous");
            const std::size_t n = static_cast<std::size_t>(rows.shape(0));
            if (labels.ndim() != 1 || static_cast<std::size_t>(labels.shape(0)) != n)
                throw Error(ErrorCode::InvalidArgument, "labels must have one entry per row");
            std::optional<py::array_t<float, py::array::c_style | py::array::forcecast>> scale_array;
            if (!scales.is_none()) {
                scale_array = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(scales);
                if (!*scale_array || scale_array->ndim() != 1 || static_cast<std::size_t>(scale_array->shape(0)) != n)
                    throw Error(ErrorCode::InvalidArgument, "scales must have one entry per row");
            }
            self.add_encoded(rows.data(), scale_array ? scale_array->data() : nullptr, n, labels.data());
        }, py::arg("rows"), py::arg("scales"), py::arg("labels"))
        .def("remove_label", &GalleryIndex::remove_label, py::arg("label"))
        .def("reserve", &GalleryIndex::reserve, py::arg("rows"))
        .def("clear", &GalleryIndex::clear)
        .def("decode", [](const GalleryIndex& self, std::size_t first, std::size_t count) {
            py::array_t<float> out({count, self.dim()});
            float* dst = out.mutable_data();
            py::gil_scoped_release release;
            self.decode(first, count, dst);
            return out;
        }, py::arg("first"), py::arg("count"), "Rows [first, first + count) as (count, D) float32.")
        .def("encoded", [](const GalleryIndex& self, std::size_t first, std::size_t count) {
            if (first > self.size() || count > self.size() - first)
                throw Error(ErrorCode::InvalidArgument, "rows " + std::to_string(first) + ".." +
                                                            std::to_string(first + count) + " are outside the gallery's " +
                                                            std::to_string(self.size()));
            const char* name = precision_name(self.precision());
            const std::size_t row_bytes = self.dim() * bytes_per_value(self.precision());
            py::array rows(py::dtype(name), std::vector<py::ssize_t>{static_cast<py::ssize_t>(count),
                                                                     static_cast<py::ssize_t>(self.dim())});
            if (count)  // an empty gallery has no row storage (a null pointer memcpy may not take)
                std::memcpy(rows.mutable_data(), static_cast<const unsigned char*>(self.encoded_rows()) + first * row_bytes,
                            count * row_bytes);
            py::array_t<float> scales(count);
            if (self.scales()) std::copy(self.scales() + first, self.scales() + first + count, scales.mutable_data());
            else std::fill(scales.mutable_data(), scales.mutable_data() + count, 1.f);
            return py::make_tuple(rows, scales);
        }, py::arg("first"), py::arg("count"),
           "Rows [first, first + count) as stored: (rows in the precision's dtype, (count,) float32 scales).")
        .def("__len__", &GalleryIndex::size)
        .def_property_readonly("dim", &GalleryIndex::dim)
        .def_property_readonly("capacity", &GalleryIndex::capacity)
        .def_property_readonly("precision", [](const GalleryIndex& self) { return std::string(precision_name(self.precision())); })
        .def_property_readonly("labels", [](const GalleryIndex& self) {
            py::array_t<std::int32_t> out(self.size());
            std::copy(self.labels(), self.labels() + self.size(), out.mutable_data());
            return out;
        })
        .def("search", [](const GalleryIndex& self, const FloatMatrix& queries, std::size_t k, bool by_label,
                          float min_score, int threads, const std::string& isa) {
            std::size_t dim = 0;
            const std::size_t nq = rows_of(queries, "queries", dim);
            if (dim != self.dim())
                throw Error(ErrorCode::InvalidArgument, "queries have dimension " + std::to_string(dim) + ", the gallery " +
                                                            std::to_string(self.dim()));
            const Isa which = isa.empty() ? best_isa() : isa_from_name(isa);
            std::vector<std::vector<Hit>> hits;
            {
                py::gil_scoped_release release;
                hits = self.search(queries.data(), nq, k, by_label, min_score, threads, which);
            }
            py::list out;
            for (const std::vector<Hit>& list : hits) {
                py::array_t<std::int64_t> ids(list.size());
                py::array_t<float> scores(list.size());
                for (std::size_t j = 0; j < list.size(); ++j) {
                    ids.mutable_data()[j] = list[j].id;
                    scores.mutable_data()[j] = list[j].score;
                }
                out.append(py::make_tuple(ids, scores));
            }
            return out;
        }, py::arg("queries"), py::arg("k"), py::arg("by_label") = true,
           py::arg("min_score") = -std::numeric_limits<float>::infinity(), py::arg("threads") = 0, py::arg("isa") = "",
           "Per query (ids, scores), best first: top k (0: no limit) with score >= min_score; ids are labels "
           "(best row per label) or row indices.");

    py::class_<Embedder>(m, "Embedder", "An ncnn face-embedding model (see fastface.Embedder for the friendly API).")
        .def(py::init([](py::object param, py::object bin, const std::string& input, const std::string& output,
                         int width, int height, const std::string& order, std::array<float, 3> mean,
                         std::array<float, 3> scale, int dim, std::optional<py::array> align_template, int threads,
                         bool fp16, bool allow_unknown_layers) {
                 ModelCard card;
                 card.input = input;
                 card.output = output;
                 card.width = width;
                 card.height = height;
                 card.norm = input_norm(order, mean, scale);
                 card.dim = dim;
                 if (align_template) card.align_template = points(*align_template, "alignment template");
                 EmbedderOptions options{threads, fp16, allow_unknown_layers};
                 // param/bin: bytes hold the model itself, str a path; bin None = zero weights.
                 const bool in_memory = py::isinstance<py::bytes>(param);
                 if (bin.is_none()) {
                     if (!in_memory) throw Error(ErrorCode::InvalidArgument, "zero-weight loading takes the param text as bytes");
                     std::string text = param.cast<std::string>();
                     py::gil_scoped_release release;
                     return Embedder::without_weights(std::move(text), card, options);
                 }
                 if (in_memory) {
                     std::string text = param.cast<std::string>();
                     std::string weights = bin.cast<std::string>();
                     py::gil_scoped_release release;
                     return Embedder::from_memory(std::move(text), std::vector<std::uint8_t>(weights.begin(), weights.end()),
                                                  card, options);
                 }
                 const std::string param_path = param.cast<std::string>(), bin_path = bin.cast<std::string>();
                 py::gil_scoped_release release;
                 return Embedder::from_files(param_path, bin_path, card, options);
             }),
             py::arg("param"), py::arg("bin"), py::arg("input"), py::arg("output"), py::arg("width"), py::arg("height"),
             py::arg("order"), py::arg("mean"), py::arg("scale"), py::arg("dim"), py::arg("align_template"),
             py::arg("threads"), py::arg("fp16"), py::arg("allow_unknown_layers") = false)
        .def_property_readonly("dim", &Embedder::dim)
        .def("blob_names", &Embedder::blob_names)
        .def("embed", [](const Embedder& self, const py::array& crops, const std::string& order, bool normalize) {
            if (crops.ndim() != 3 && crops.ndim() != 4)
                throw Error(ErrorCode::InvalidArgument, "crops must be (N, H, W) or (N, H, W, C)");
            if (!crops.dtype().is(py::dtype::of<std::uint8_t>()))
                throw Error(ErrorCode::InvalidArgument, "crops must be uint8, got " + std::string(py::str(crops.dtype())));
            const std::size_t n = static_cast<std::size_t>(crops.shape(0));
            std::vector<ImageView> views;
            py::object as_array = py::module_::import("numpy").attr("ascontiguousarray")(crops);
            const py::array packed = as_array.cast<py::array>();
            const std::size_t crop_bytes = n ? static_cast<std::size_t>(packed.nbytes()) / n : 0;
            for (std::size_t i = 0; i < n; ++i) {
                ImageView v;
                v.data = static_cast<const std::uint8_t*>(packed.data()) + i * crop_bytes;
                v.height = static_cast<int>(packed.shape(1));
                v.width = static_cast<int>(packed.shape(2));
                const int channels = packed.ndim() == 4 ? static_cast<int>(packed.shape(3)) : 1;
                if (channels != 1 && channels != 3)
                    throw Error(ErrorCode::InvalidArgument, "crops must have 1 or 3 channels, got " + std::to_string(channels));
                v.format = channels == 1 ? PixelFormat::Gray : parse_format(order);
                v.row_stride = static_cast<std::ptrdiff_t>(v.width) * channels;
                views.push_back(v);
            }
            py::array_t<float> out({n, static_cast<std::size_t>(self.dim())});
            float* dst = out.mutable_data();
            py::gil_scoped_release release;
            self.embed(views.data(), n, dst, normalize);
            return out;
        }, py::arg("crops"), py::arg("order"), py::arg("normalize"))
        .def("embed_face", [](const Embedder& self, const py::array& image, const std::string& order,
                              const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks,
                              bool normalize) {
            const ImageView view = image_view(image, order);
            const std::vector<Point2f> lm = points(landmarks, "landmarks");
            py::array_t<float> out(static_cast<std::size_t>(self.dim()));
            float* dst = out.mutable_data();
            py::gil_scoped_release release;
            self.embed_face(view, lm, dst, normalize);
            return out;
        }, py::arg("image"), py::arg("order"), py::arg("landmarks"), py::arg("normalize"))
        .def("embed_face_affine", [](const Embedder& self, const py::array& image, const std::string& order,
                                     const py::array_t<double, py::array::c_style | py::array::forcecast>& matrix,
                                     bool normalize) {
            const ImageView view = image_view(image, order);
            const Affine dst_to_src = affine(matrix);
            py::array_t<float> out(static_cast<std::size_t>(self.dim()));
            float* dst = out.mutable_data();
            py::gil_scoped_release release;
            self.embed_face(view, dst_to_src, dst, normalize);
            return out;
        }, py::arg("image"), py::arg("order"), py::arg("dst_to_src"), py::arg("normalize"));

    py::class_<Detector>(m, "Detector", "An ncnn face detector (see fastface.Detector for the friendly API).")
        .def(py::init([](const std::string& param, const std::string& bin, const std::string& kind,
                         const std::string& input, const std::vector<std::string>& outputs, int input_width,
                         int input_height, const std::string& order, std::array<float, 3> mean,
                         std::array<float, 3> scale, int max_side, float score_threshold, float nms_threshold,
                         float min_face, int max_faces, int threads, bool upscale, bool allow_unknown_layers) {
                 DetectorConfig config;
                 if (kind == "retinaface")
                     config.kind = DetectorKind::RetinaFaceInsightface;
                 else if (kind == "yunet")
                     config.kind = DetectorKind::YuNet;
                 else if (kind == "retinaface-torch")
                     config.kind = DetectorKind::RetinaFaceBiubug6;
                 else
                     throw Error(ErrorCode::InvalidArgument, "unknown detector kind '" + kind + "'");
                 config.input = input;
                 config.outputs = outputs;
                 config.input_width = input_width;
                 config.input_height = input_height;
                 config.norm = input_norm(order, mean, scale);
                 config.max_side = max_side;
                 config.upscale = upscale;
                 config.score_threshold = score_threshold;
                 config.nms_threshold = nms_threshold;
                 config.min_face = min_face;
                 config.max_faces = max_faces;
                 py::gil_scoped_release release;
                 return Detector::from_files(param, bin, config, EmbedderOptions{threads, false, allow_unknown_layers});
             }),
             py::arg("param"), py::arg("bin"), py::arg("kind"), py::arg("input"), py::arg("outputs"),
             py::arg("input_width"), py::arg("input_height"), py::arg("order"), py::arg("mean"),
             py::arg("scale"), py::arg("max_side"), py::arg("score_threshold"), py::arg("nms_threshold"),
             py::arg("min_face"), py::arg("max_faces"), py::arg("threads"), py::arg("upscale") = false,
             py::arg("allow_unknown_layers") = false)
        .def("detect", [](const Detector& self, const py::array& image, const std::string& order) {
            const ImageView view = image_view(image, order);
            std::vector<Face> faces;
            {
                py::gil_scoped_release release;
                faces = self.detect(view);
            }
            const std::size_t n = faces.size();
            py::array_t<float> boxes({n, std::size_t{4}}), scores(n), landmarks({n, std::size_t{5}, std::size_t{2}});
            for (std::size_t i = 0; i < n; ++i) {
                const Face& f = faces[i];
                float* b = boxes.mutable_data(i);
                b[0] = f.x1; b[1] = f.y1; b[2] = f.x2; b[3] = f.y2;
                scores.mutable_at(i) = f.score;
                for (int k = 0; k < 5; ++k) {
                    landmarks.mutable_at(i, k, 0) = f.landmarks[k].x;
                    landmarks.mutable_at(i, k, 1) = f.landmarks[k].y;
                }
            }
            return py::make_tuple(boxes, scores, landmarks);
        }, py::arg("image"), py::arg("order"));

    py::class_<ShapePredictor>(m, "ShapePredictor",
                               "dlib's shape predictor (regression trees) on fastface's file (see fastface.ShapePredictor).")
        .def(py::init([](const py::object& source) {
                 // bytes hold the model itself, str a path.
                 if (py::isinstance<py::bytes>(source)) {
                     const std::string data = source.cast<std::string>();
                     py::gil_scoped_release release;
                     return ShapePredictor::from_memory(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
                 }
                 const std::string path = source.cast<std::string>();
                 py::gil_scoped_release release;
                 return ShapePredictor::from_file(path);
             }),
             py::arg("source"))
        .def_property_readonly("num_parts", &ShapePredictor::num_parts)
        .def_property_readonly("num_cascades", &ShapePredictor::num_cascades)
        .def("predict", [](const ShapePredictor& self, const py::array& image, const std::string& order, double x1,
                           double y1, double x2, double y2) {
            const ImageView view = image_view(image, order);
            std::vector<Point2d> found;
            {
                py::gil_scoped_release release;
                found = self.predict(view, ShapeBox{x1, y1, x2, y2});
            }
            py::array_t<double> out({found.size(), std::size_t{2}});
            for (std::size_t i = 0; i < found.size(); ++i) {
                out.mutable_at(i, 0) = found[i].x;
                out.mutable_at(i, 1) = found[i].y;
            }
            return out;
        }, py::arg("image"), py::arg("order"), py::arg("x1"), py::arg("y1"), py::arg("x2"), py::arg("y2"),
           "(num_parts, 2) float64 landmarks, unrounded; dlib returns floor(v + 0.5) of them.");

    // Liveness (issue 20): minivision's MiniFASNet pair on scaled face crops.
    m.def("liveness_region", [](int width, int height, std::array<float, 4> box, double scale) {
        Face face;
        face.x1 = box[0], face.y1 = box[1], face.x2 = box[2], face.y2 = box[3];
        const PixelRect r = liveness_region(width, height, face, scale);
        return py::make_tuple(r.left, r.top, r.right, r.bottom);
    }, py::arg("width"), py::arg("height"), py::arg("box"), py::arg("scale"),
       "Inclusive (left, top, right, bottom) of the region a liveness model of this crop scale sees.");
    m.def("liveness_input", [](const py::array& image, const std::string& order, std::array<int, 4> region, int size) {
        const ImageView view = image_view(image, order);
        if (size <= 0 || size > 4096) throw Error(ErrorCode::InvalidArgument, "size must be 1..4096");
        py::array_t<float> out({3, size, size});
        float* base = out.mutable_data();
        float* planes[3] = {base, base + size * size, base + 2 * size * size};
        const PixelRect r{region[0], region[1], region[2], region[3]};
        py::gil_scoped_release release;
        liveness_input(view, r, size, InputNorm{PixelFormat::BGR, {0, 0, 0}, {1, 1, 1}}, planes);
        return out;
    }, py::arg("image"), py::arg("order"), py::arg("region"), py::arg("size"),
       "The (3, size, size) raw BGR network input cut from the inclusive region.");
    py::class_<Liveness>(m, "Liveness", "Liveness models (see fastface.Liveness for the friendly API).")
        .def(py::init([](const std::vector<std::string>& params, const std::vector<std::string>& bins,
                         const std::vector<py::dict>& cards, float threshold, int threads,
                         std::optional<std::array<double, 4>> box_map) {
                 std::vector<LivenessCard> parsed;
                 for (const py::dict& d : cards) {
                     LivenessCard card;
                     card.input = d["input"].cast<std::string>();
                     card.output = d["output"].cast<std::string>();
                     card.size = d["size"].cast<int>();
                     card.crop_scale = d["crop_scale"].cast<double>();
                     card.norm = input_norm(d["channel_order"].cast<std::string>(), d["mean"].cast<std::array<float, 3>>(),
                                            d["scale"].cast<std::array<float, 3>>());
                     card.classes = d["classes"].cast<int>();
                     card.real_class = d["real_class"].cast<int>();
                     parsed.push_back(card);
                 }
                 const LivenessBoxMap map = box_map ? LivenessBoxMap{(*box_map)[0], (*box_map)[1], (*box_map)[2],
                                                                     (*box_map)[3]}
                                                    : kYuNetBoxMap;
                 py::gil_scoped_release release;
                 return Liveness::from_files(params, bins, parsed, threshold, EmbedderOptions{threads, false}, map);
             }),
             py::arg("params"), py::arg("bins"), py::arg("cards"), py::arg("threshold"), py::arg("threads"),
             py::arg("box_map") = py::none(), "box_map (dx, dy, sw, sh); None: the core's map for YuNet boxes.")
        .def_property_readonly("threshold", &Liveness::threshold)
        .def_property_readonly("box_map", [](const Liveness& self) {
            const LivenessBoxMap& m = self.box_map();
            return py::make_tuple(m.dx, m.dy, m.sw, m.sh);
        })
        .def("score", [](const Liveness& self, const py::array& image, const std::string& order,
                         std::array<float, 4> box) {
            const ImageView view = image_view(image, order);
            Face face;
            face.x1 = box[0], face.y1 = box[1], face.x2 = box[2], face.y2 = box[3];
            std::vector<float> per_model;
            float score;
            {
                py::gil_scoped_release release;
                score = self.score(view, face, &per_model);
            }
            return py::make_tuple(score, per_model);
        }, py::arg("image"), py::arg("order"), py::arg("box"), "(probability real, per-model probabilities).");

    // Video (issue 13): the tracker behind fastface.Stream.
    m.def("face_quality", [](const py::array_t<float, py::array::c_style | py::array::forcecast>& box,
                             const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks,
                             float full_quality_size) {
        if (box.ndim() != 1 || box.shape(0) != 4) throw Error(ErrorCode::InvalidArgument, "bbox must have shape (4,)");
        const std::vector<Point2f> p = points(landmarks, "landmarks");
        if (p.size() != 5) throw Error(ErrorCode::InvalidArgument, "landmarks must have shape (5, 2)");
        Face face;
        face.x1 = box.at(0);
        face.y1 = box.at(1);
        face.x2 = box.at(2);
        face.y2 = box.at(3);
        std::copy(p.begin(), p.end(), face.landmarks.begin());
        return face_quality(face, full_quality_size);
    }, py::arg("bbox"), py::arg("landmarks"), py::arg("full_quality_size") = 80.f);
    m.def("face_frontality", [](const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks) {
        const std::vector<Point2f> p = points(landmarks, "landmarks");
        if (p.size() != 5) throw Error(ErrorCode::InvalidArgument, "landmarks must have shape (5, 2)");
        std::array<Point2f, 5> five;
        std::copy(p.begin(), p.end(), five.begin());
        return face_frontality(five);
    }, py::arg("landmarks"));

    py::class_<Tracker>(m, "Tracker", "Face tracker: ids, embed decisions, aggregation, events (see fastface.Stream).")
        .def(py::init([](float iou_threshold, float distance_gate, int max_missed, float velocity_smoothing,
                         float full_quality_size, float min_quality, float reembed_gain, int max_embeddings) {
                 return Tracker(TrackerConfig{iou_threshold, distance_gate, max_missed, velocity_smoothing,
                                              full_quality_size, min_quality, reembed_gain, max_embeddings});
             }),
             py::arg("iou_threshold") = 0.3f, py::arg("distance_gate") = 0.5f, py::arg("max_missed") = 15,
             py::arg("velocity_smoothing") = 0.5f,
             py::arg("full_quality_size") = 80.f, py::arg("min_quality") = 0.2f, py::arg("reembed_gain") = 0.15f,
             py::arg("max_embeddings") = 5)
        .def("update", [](Tracker& self, std::int64_t frame,
                          const py::array_t<float, py::array::c_style | py::array::forcecast>& boxes,
                          const py::array_t<float, py::array::c_style | py::array::forcecast>& scores,
                          const py::array_t<float, py::array::c_style | py::array::forcecast>& landmarks) {
            return self.update(frame, faces_from_arrays(boxes, scores, landmarks));
        }, py::arg("frame"), py::arg("boxes"), py::arg("scores"), py::arg("landmarks"))
        .def("predict", &Tracker::predict, py::arg("frame"))
        .def("embedding_wanted", &Tracker::embedding_wanted)
        .def("add_embedding", [](Tracker& self, int id, const py::array_t<float, py::array::c_style | py::array::forcecast>& e) {
            if (e.ndim() != 1) throw Error(ErrorCode::InvalidArgument, "embedding must be 1-D");
            const std::vector<float>& mean = self.add_embedding(id, e.data(), static_cast<std::size_t>(e.shape(0)));
            return py::array_t<float>(mean.size(), mean.data());
        }, py::arg("id"), py::arg("embedding"))
        .def("set_identity", &Tracker::set_identity, py::arg("id"), py::arg("name"), py::arg("score"))
        .def("finish", &Tracker::finish, py::arg("frame"))
        .def("take_events", [](Tracker& self) {
            py::list out;
            for (const TrackEvent& e : self.take_events())
                out.append(py::make_tuple(track_event_name(e.type), e.track_id, e.frame, e.name, e.previous, e.score));
            return out;
        }, "Events since the last call: (kind, track_id, frame, name, previous, score) tuples.")
        .def("tracks", [](const Tracker& self) {
            py::list out;
            for (const Track& t : self.tracks()) out.append(track_dict(t));
            return out;
        })
        .def("track", [](const Tracker& self, int id) { return track_dict(self.track(id)); }, py::arg("id"))
        .def_property_readonly("tracks_started", &Tracker::tracks_started);
}
