# Board presets: -DFASTFACE_BOARD=<board> picks the CPU flags for fastface and the ncnn it builds.
#
#   board          CPU                    aarch64 flags             armv7 flags (+ -mfpu=neon-vfpv4
#                                                                    -mfloat-abi=hard -mfp16-format=ieee)
#   generic        any ARMv8-A / ARMv7-A  (none)                    -march=armv7-a
#   pi3            Cortex-A53 (Zero 2 W)  -mcpu=cortex-a53          -mcpu=cortex-a53
#   pi4            Cortex-A72             -mcpu=cortex-a72          -mcpu=cortex-a72
#   pi5            Cortex-A76             -mcpu=cortex-a76          -mcpu=cortex-a76
#   jetson-nano    Cortex-A57             -mcpu=cortex-a57          (Jetson OSes are 64-bit only)
#   orin           Cortex-A78AE           -mcpu=cortex-a78ae        (Jetson OSes are 64-bit only)
#
# Used by toolchains/aarch64-linux-gnu.cmake and toolchains/arm-linux-gnueabihf.cmake (cross
# builds) and by CMakeLists.txt for a native build on the board (pip install with
# CMAKE_ARGS=-DFASTFACE_BOARD=pi4). A -mcpu preset binary may use instructions older cores lack
# (pi5/orin code needs ARMv8.2); "generic" runs on every board. ncnn's own ARMv8.2 fp16/dotprod
# kernels are chosen at run time (NCNN_RUNTIME_CPU), whatever the preset: their files add a later
# -march, so GCC warns "switch -mcpu=... conflicts with -march=..." there (harmless: -march wins
# for those files, which only run on CPUs that have the feature).
include_guard(GLOBAL)

set(FASTFACE_BOARDS generic pi3 pi4 pi5 jetson-nano orin)

# fastface_board_flags(<aarch64|armv7> <board> <out_var>): the compiler flags, or FATAL_ERROR.
function(fastface_board_flags arch board out_var)
  if(board STREQUAL "" OR board STREQUAL "generic")
    set(cpu "")
  elseif(board STREQUAL "pi3")
    set(cpu cortex-a53)
  elseif(board STREQUAL "pi4")
    set(cpu cortex-a72)
  elseif(board STREQUAL "pi5")
    set(cpu cortex-a76)
  elseif(board STREQUAL "jetson-nano")
    set(cpu cortex-a57)
  elseif(board STREQUAL "orin")
    set(cpu cortex-a78ae)
  else()
    string(REPLACE ";" ", " choices "${FASTFACE_BOARDS}")
    message(FATAL_ERROR "FASTFACE_BOARD='${board}' is not a known board; choose one of: ${choices}")
  endif()
  if(arch STREQUAL "aarch64")
    if(cpu)
      set(flags "-mcpu=${cpu}")
    else()
      set(flags "")
    endif()
  elseif(arch STREQUAL "armv7")
    # Hard-float ABI (armhf) with NEON and VFPv4 (fused multiply-add, fp16 conversion). GCC
    # declares the fp16 conversion intrinsics, which ncnn's base kernels use once VFPv4 is on,
    # only with an fp16 format chosen.
    if(cpu)
      set(flags "-mcpu=${cpu} -mfpu=neon-vfpv4 -mfloat-abi=hard -mfp16-format=ieee")
    else()
      set(flags "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard -mfp16-format=ieee")
    endif()
  else()
    message(FATAL_ERROR "fastface_board_flags: arch must be aarch64 or armv7, got '${arch}'")
  endif()
  set(${out_var} "${flags}" PARENT_SCOPE)
endfunction()
