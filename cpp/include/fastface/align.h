// 5-landmark similarity alignment fused with network-input normalization.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "fastface/image.h"
#include "fastface/simd.h"

namespace fastface {

struct Point2f {
    float x;
    float y;
};

// Row-major 2x3 affine matrix mapping (x, y, 1) to (x', y').
using Affine = std::array<double, 6>;

// The ArcFace 112x112 template: left eye, right eye, nose, left and right mouth corners.
extern const std::array<Point2f, 5> kArcFaceTemplate112;

// Default template for a width x height crop: the 112x112 one scaled per axis.
std::vector<Point2f> arcface_template(int width, int height);

// Least-squares similarity (rotation, uniform scale, translation) taking src onto dst
// (Umeyama 1991, closed form). Needs >= 2 finite points, not all coincident.
Affine estimate_similarity(const std::vector<Point2f>& src, const std::vector<Point2f>& dst);

// Inverse of an invertible affine map; throws InvalidArgument for a singular one.
Affine invert_affine(const Affine& m);

// The crop dlib's extract_image_chip(get_face_chip_details(shape, size, padding)) cuts, as a
// crop-pixel -> image map: the similarity fitted from chip_template (dlib's mean-face points in
// chip units) to the points — chip to image, the direction dlib fits — whose extraction
// rectangle, one image pixel narrower than width x scale, maps corner to corner onto the crop's
// pixels. Needs width, height >= 2.
Affine dlib_chip_geometry(const std::vector<Point2f>& points, const std::vector<Point2f>& chip_template,
                          int width, int height);

// Where each output pixel samples from, and what it writes.
struct WarpParams {
    Affine dst_to_src;  // maps output pixel centres to source coordinates
    int out_width = 0;
    int out_height = 0;
    std::uint8_t border_value = 0;
};

// Bilinear warp to an interleaved uint8 crop in the source's pixel format.
// out has out_height rows of out_width * channels bytes, tightly packed.
void warp_to_u8(const ImageView& src, const WarpParams& params, std::uint8_t* out, Isa isa = best_isa());

// How the network wants its input: planar float, channels in `order`,
// value = (pixel - mean[c]) * scale[c] with c indexing the output channels.
struct InputNorm {
    PixelFormat order = PixelFormat::RGB;  // Gray means a 1-channel network
    std::array<float, 3> mean{0.f, 0.f, 0.f};
    std::array<float, 3> scale{1.f, 1.f, 1.f};
};

// Bilinear warp fused with channel reordering and normalization, in one pass.
// planes[c] points at out_height rows of out_width floats for output channel c.
void warp_to_planar(const ImageView& src, const WarpParams& params, const InputNorm& norm,
                    float* const* planes, Isa isa = best_isa());

// warp_to_planar with the identity matrix — output pixel (x, y) is source pixel (x, y), border
// beyond the source — without resampling: crops already at the network's size, detector input
// at native resolution.
void copy_to_planar(const ImageView& src, int out_width, int out_height, const InputNorm& norm,
                    float* const* planes, std::uint8_t border_value = 0);

// Convenience: estimate the similarity from landmarks to the template and warp to uint8.
std::vector<std::uint8_t> align_face(const ImageView& image, const std::vector<Point2f>& landmarks,
                                     int out_width, int out_height,
                                     const std::vector<Point2f>& dst_template);

// Throws InvalidArgument unless landmarks are finite, distinct and roughly near the image.
void validate_landmarks(const ImageView& image, const std::vector<Point2f>& landmarks);

}  // namespace fastface
