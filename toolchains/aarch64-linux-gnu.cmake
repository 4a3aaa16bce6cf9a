# CMake toolchain: 64-bit ARM Linux: Raspberry Pi 3/4/5 with a 64-bit OS, Jetson Nano, Orin.
#
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake [-DFASTFACE_BOARD=pi4]
#   (or: toolchains/cross-build.sh aarch64 [board], which also installs and can test under qemu)
#
# Compiler: Debian/Ubuntu's g++-aarch64-linux-gnu; FASTFACE_CROSS_PREFIX replaces the "aarch64-linux-gnu-" prefix
# (e.g. a vendor toolchain), FASTFACE_SYSROOT the target root (default /usr/aarch64-linux-gnu, where
# Debian's cross packages put the target's libc). Board presets (-DFASTFACE_BOARD=...): see
# boards.cmake. cmake/ncnn.cmake passes this file and FASTFACE_BOARD on to the ncnn build, so
# ncnn is compiled with the same flags (and cached per board).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED FASTFACE_CROSS_PREFIX)
  set(FASTFACE_CROSS_PREFIX aarch64-linux-gnu-)
endif()
if(NOT DEFINED CMAKE_C_COMPILER)
  set(CMAKE_C_COMPILER ${FASTFACE_CROSS_PREFIX}gcc)
endif()
if(NOT DEFINED CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER ${FASTFACE_CROSS_PREFIX}g++)
endif()

if(NOT DEFINED FASTFACE_SYSROOT)
  set(FASTFACE_SYSROOT /usr/aarch64-linux-gnu)
endif()
# Libraries and headers from the target root only; programs (python, ccache) from the host.
# Packages from both: ncnn's cached build and a user's ncnn_DIR live outside the target root.
set(CMAKE_FIND_ROOT_PATH ${FASTFACE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Lets try_run and CMake's test tools run target programs under user-mode emulation.
find_program(FASTFACE_QEMU qemu-aarch64)
if(FASTFACE_QEMU AND EXISTS "${FASTFACE_SYSROOT}")
  set(CMAKE_CROSSCOMPILING_EMULATOR "${FASTFACE_QEMU};-L;${FASTFACE_SYSROOT}")
endif()

include("${CMAKE_CURRENT_LIST_DIR}/boards.cmake")
if(NOT DEFINED FASTFACE_BOARD)
  set(FASTFACE_BOARD generic)
endif()
fastface_board_flags(aarch64 "${FASTFACE_BOARD}" FASTFACE_TARGET_FLAGS)
# The _INIT flags seed CMAKE_<LANG>_FLAGS once per build tree, so a board is fixed per tree.
if(DEFINED CACHE{FASTFACE_TOOLCHAIN_BOARD} AND NOT "$CACHE{FASTFACE_TOOLCHAIN_BOARD}" STREQUAL "${FASTFACE_BOARD}")
  message(FATAL_ERROR "this build tree was configured for FASTFACE_BOARD=$CACHE{FASTFACE_TOOLCHAIN_BOARD}; "
                      "use a fresh build directory for FASTFACE_BOARD=${FASTFACE_BOARD}")
endif()
set(FASTFACE_TOOLCHAIN_BOARD "${FASTFACE_BOARD}" CACHE INTERNAL "board this build tree was configured for")
set(CMAKE_C_FLAGS_INIT "${FASTFACE_TARGET_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${FASTFACE_TARGET_FLAGS}")
# Tells CMakeLists.txt and cmake/ncnn.cmake that the board flags are applied here.
set(FASTFACE_TOOLCHAIN_APPLIES_BOARD TRUE)
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FASTFACE_BOARD FASTFACE_CROSS_PREFIX FASTFACE_SYSROOT)
