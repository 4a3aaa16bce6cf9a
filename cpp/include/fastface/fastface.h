// fastface C++ core: alignment, embedding and matching. Include this one header.
#pragma once

#include "fastface/align.h"
#include "fastface/detector.h"
#include "fastface/embedder.h"
#include "fastface/error.h"
#include "fastface/gallery_index.h"
#include "fastface/image.h"
#include "fastface/liveness.h"
#include "fastface/match.h"
#include "fastface/model_check.h"
#include "fastface/shape_predictor.h"
#include "fastface/simd.h"
#include "fastface/track.h"
