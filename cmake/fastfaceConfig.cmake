# find_package(fastface CONFIG) for an installed fastface C++ core (cmake --install, or
# toolchains/cross-build.sh): defines fastface::core (static library + public headers).
# ncnn comes from ncnn_DIR when set, else from the copy installed beside fastface.
include(CMakeFindDependencyMacro)
if(NOT TARGET ncnn)
  if(NOT DEFINED ncnn_DIR AND EXISTS "${CMAKE_CURRENT_LIST_DIR}/../ncnn/ncnnConfig.cmake")
    set(ncnn_DIR "${CMAKE_CURRENT_LIST_DIR}/../ncnn")
  endif()
  find_dependency(ncnn CONFIG)
endif()
find_dependency(Threads)
include("${CMAKE_CURRENT_LIST_DIR}/fastfaceTargets.cmake")
