// Scalar reference warp: the definition every SIMD variant is tested against.
#include "kernels/kernels.h"

namespace fastface {
namespace kernels {

void warp_rows_scalar(const WarpArgs& a, int row_begin, int row_end) {
    float values[3];
    for (int y = row_begin; y < row_end; ++y) {
        const float row_x = a.m[1] * static_cast<float>(y) + a.m[2];
        const float row_y = a.m[4] * static_cast<float>(y) + a.m[5];
        for (int x = 0; x < a.out_width; ++x) {
            const float sx = a.m[0] * static_cast<float>(x) + row_x;
            const float sy = a.m[3] * static_cast<float>(x) + row_y;
            sample_pixel(a, sx, sy, values);
            store_pixel(a, x, y, values);
        }
    }
}

}  // namespace kernels
}  // namespace fastface
