# Resolve ncnn for fastface.
#
# 1. A user-provided ncnn: set ncnn_DIR (CMake variable or environment variable) to the folder
#    holding ncnnConfig.cmake, e.g. your own Vulkan build on a Jetson.
# 2. Otherwise ncnn's official source release from the package registry, pinned below, fetched
#    with pip (cmake/fetch_ncnn.py), built as a static library for the current compiler and
#    toolchain, and cached outside the build tree (FASTFACE_CACHE_DIR, default
#    ~/.cache/fastface) so rebuilds of fastface neither download nor recompile it.
#
# Defines the imported target `ncnn`.

set(FASTFACE_NCNN_VERSION "1.0.20261020")
set(FASTFACE_NCNN_SHA256 "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200")

# Layers no face detector or recognizer uses; dropping them cuts the ncnn build time.
set(FASTFACE_NCNN_UNUSED_LAYERS
    RNN LSTM GRU MultiHeadAttention SDPA RotaryEmbed RMSNorm Einsum DeformableConv2D
    Spectrogram InverseSpectrogram Convolution1D ConvolutionDepthWise1D Pooling1D
    Deconvolution1D DeconvolutionDepthWise1D Convolution3D ConvolutionDepthWise3D Pooling3D
    Deconvolution3D DeconvolutionDepthWise3D Fold Unfold GridSample Embed StatisticsPooling
    CumulativeSum Proposal ROIPooling PSROIPooling ROIAlign DetectionOutput PriorBox Reorg
    YoloDetectionOutput Yolov3DetectionOutput)

if(NOT DEFINED ncnn_DIR AND DEFINED ENV{ncnn_DIR})
  set(ncnn_DIR "$ENV{ncnn_DIR}")
endif()
if(DEFINED ncnn_DIR)
  find_package(ncnn REQUIRED CONFIG)
  message(STATUS "fastface: using user-provided ncnn from ${ncnn_DIR}")
  return()
endif()

set(_ncnn_options
    -DCMAKE_BUILD_TYPE=Release
    -DNCNN_SHARED_LIB=OFF
    -DNCNN_BUILD_TOOLS=OFF
    -DNCNN_BUILD_EXAMPLES=OFF
    -DNCNN_BUILD_BENCHMARK=OFF
    -DNCNN_BUILD_TESTS=OFF
    -DNCNN_PYTHON=OFF
    -DNCNN_VULKAN=OFF
    -DNCNN_PIXEL_DRAWING=OFF
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    # Runtime-dispatched x86 variants used only by int8/bf16 kernels or old AMD chips.
    -DNCNN_XOP=OFF -DNCNN_FMA4=OFF -DNCNN_AVXVNNI=OFF -DNCNN_AVXVNNIINT8=OFF
    -DNCNN_AVXVNNIINT16=OFF -DNCNN_AVXNECONVERT=OFF -DNCNN_AVX512VNNI=OFF
    -DNCNN_AVX512BF16=OFF -DNCNN_AVX512FP16=OFF)
foreach(_layer IN LISTS FASTFACE_NCNN_UNUSED_LAYERS)
  string(TOLOWER "${_layer}" _lower)
  list(APPEND _ncnn_options "-DWITH_LAYER_${_lower}=OFF")
endforeach()
if(CMAKE_TOOLCHAIN_FILE)
  get_filename_component(_toolchain "${CMAKE_TOOLCHAIN_FILE}" ABSOLUTE)
  list(APPEND _ncnn_options "-DCMAKE_TOOLCHAIN_FILE=${_toolchain}")
  file(READ "${_toolchain}" _toolchain_text)
else()
  set(_toolchain_text "")
endif()
# Board presets (toolchains/boards.cmake): the ncnn build gets the same FASTFACE_BOARD, which
# fastface's toolchain files turn into flags there; a native build passes the flags themselves.
# The resolved flags join the cache key, so each board gets its own cached ncnn.
if(FASTFACE_BOARD)
  list(APPEND _ncnn_options "-DFASTFACE_BOARD=${FASTFACE_BOARD}")
  if(NOT FASTFACE_TOOLCHAIN_APPLIES_BOARD)
    list(APPEND _ncnn_options "-DCMAKE_C_FLAGS=${FASTFACE_TARGET_FLAGS}" "-DCMAKE_CXX_FLAGS=${FASTFACE_TARGET_FLAGS}")
  endif()
endif()
if(FASTFACE_TARGET_FLAGS)
  string(APPEND _toolchain_text "\n# target flags: ${FASTFACE_TARGET_FLAGS}")
endif()
find_program(FASTFACE_CCACHE ccache)
set(_ncnn_launcher "")
if(FASTFACE_CCACHE)
  # The launcher changes no output, so it stays out of the cache key.
  set(_ncnn_launcher -DCMAKE_C_COMPILER_LAUNCHER=${FASTFACE_CCACHE} -DCMAKE_CXX_COMPILER_LAUNCHER=${FASTFACE_CCACHE})
endif()

# One cached build per (release, compiler, target, options).
# The compiler's path stays out of the key: pip says g++ where cmake says c++ for the same one.
string(SHA256 _ncnn_key "${FASTFACE_NCNN_VERSION};${CMAKE_CXX_COMPILER_ID};${CMAKE_CXX_COMPILER_VERSION};${CMAKE_SYSTEM_PROCESSOR};${_ncnn_options};${_toolchain_text}")
string(SUBSTRING "${_ncnn_key}" 0 12 _ncnn_key)
if(DEFINED ENV{FASTFACE_CACHE_DIR})
  set(_cache "$ENV{FASTFACE_CACHE_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(_cache "$ENV{XDG_CACHE_HOME}/fastface")
else()
  set(_cache "$ENV{HOME}/.cache/fastface")
endif()
set(_ncnn_prefix "${_cache}/ncnn-${FASTFACE_NCNN_VERSION}-${CMAKE_SYSTEM_PROCESSOR}-${_ncnn_key}")
set(_ncnn_config_dir "${_ncnn_prefix}/lib/cmake/ncnn")

file(MAKE_DIRECTORY "${_cache}")
file(LOCK "${_cache}/ncnn-${_ncnn_key}.lock" GUARD FILE TIMEOUT 3600)
if(NOT EXISTS "${_ncnn_config_dir}/ncnnConfig.cmake")
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/fetch_ncnn.py"
            "${FASTFACE_NCNN_VERSION}" "${FASTFACE_NCNN_SHA256}" "${_cache}/src"
    COMMAND_ERROR_IS_FATAL ANY)
  set(_ncnn_build "${_ncnn_prefix}.build")
  message(STATUS "fastface: building ncnn ${FASTFACE_NCNN_VERSION} into ${_ncnn_prefix} (once; a few minutes)")
  file(REMOVE_RECURSE "${_ncnn_build}")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${_cache}/src/ncnn-${FASTFACE_NCNN_VERSION}" -B "${_ncnn_build}"
            -G "${CMAKE_GENERATOR}" ${_ncnn_options} ${_ncnn_launcher}
            "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
            "-DCMAKE_INSTALL_PREFIX=${_ncnn_prefix}.partial"
    COMMAND_ERROR_IS_FATAL ANY)
  cmake_host_system_information(RESULT _cores QUERY NUMBER_OF_LOGICAL_CORES)
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${_ncnn_build}" --parallel ${_cores}
                  COMMAND_ERROR_IS_FATAL ANY)
  file(REMOVE_RECURSE "${_ncnn_prefix}.partial")
  execute_process(COMMAND "${CMAKE_COMMAND}" --install "${_ncnn_build}" COMMAND_ERROR_IS_FATAL ANY)
  # Publish by rename so an interrupted build never looks finished.
  file(RENAME "${_ncnn_prefix}.partial" "${_ncnn_prefix}")
  file(REMOVE_RECURSE "${_ncnn_build}")
endif()
file(LOCK "${_cache}/ncnn-${_ncnn_key}.lock" RELEASE)

find_package(ncnn REQUIRED CONFIG PATHS "${_ncnn_config_dir}" NO_DEFAULT_PATH)
# find_package caches ncnn_DIR; forget it so the next configure doesn't take it for the user's.
unset(ncnn_DIR CACHE)
message(STATUS "fastface: using ncnn ${FASTFACE_NCNN_VERSION} from ${_ncnn_prefix}")
# Installed beside fastface (CMakeLists.txt) so a cross-built prefix is complete for the board.
set(FASTFACE_NCNN_PREFIX "${_ncnn_prefix}")
# For a second build that must link this very ncnn (the clang fuzzing build: ncnn_DIR=<this>).
set(FASTFACE_NCNN_CONFIG_DIR "${_ncnn_config_dir}" CACHE INTERNAL "the cached ncnn this build uses")
