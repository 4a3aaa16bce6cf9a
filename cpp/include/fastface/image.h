// A non-owning view of an 8-bit image in memory, as produced by OpenCV, numpy or a camera.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastface {

enum class PixelFormat { Gray, BGR, RGB };

inline int channel_count(PixelFormat format) { return format == PixelFormat::Gray ? 1 : 3; }

struct ImageView {
    const std::uint8_t* data = nullptr;
    int width = 0;
    int height = 0;
    std::ptrdiff_t row_stride = 0;  // bytes from one row to the next (>= width * channels)
    PixelFormat format = PixelFormat::BGR;

    int channels() const { return channel_count(format); }
};

// Throws fastface::Error (InvalidArgument) unless the view describes a usable image.
void validate(const ImageView& image);

}  // namespace fastface
