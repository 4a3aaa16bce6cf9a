#include "fastface/image.h"

#include <string>

#include "fastface/error.h"

namespace fastface {

void validate(const ImageView& image) {
    if (image.data == nullptr) throw Error(ErrorCode::InvalidArgument, "image has no data");
    if (image.width <= 0 || image.height <= 0)
        throw Error(ErrorCode::InvalidArgument, "image is empty (" + std::to_string(image.width) + "x" +
                                                    std::to_string(image.height) + ")");
    const std::ptrdiff_t row_bytes = static_cast<std::ptrdiff_t>(image.width) * image.channels();
    if (image.row_stride < row_bytes)
        throw Error(ErrorCode::InvalidArgument, "image row stride " + std::to_string(image.row_stride) +
                                                    " is smaller than a row (" + std::to_string(row_bytes) + " bytes)");
}

}  // namespace fastface
