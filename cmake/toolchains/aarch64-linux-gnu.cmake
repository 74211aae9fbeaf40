# Cross-compiles vapipe for aarch64 (arm64) Linux on an x86-64 Debian 12 host with Debian's
# gcc/g++-aarch64-linux-gnu, against the arm64 sysroot scripts/setup-cross-arm64.sh builds.
#
#   cmake -S . -B build-arm64 -G Ninja --toolchain cmake/toolchains/aarch64-linux-gnu.cmake -DVAPIPE_RUNTIME_ONLY=ON
#
# The sysroot is $VAPIPE_ARM64_SYSROOT, else -DVAPIPE_ARM64_SYSROOT=..., else /opt/vapipe-arm64-sysroot.
# Programs built here run on the host through qemu-user: CMAKE_CROSSCOMPILING_EMULATOR makes ctest (and
# gtest_discover_tests at build time) start them as `qemu-aarch64 -L <sysroot> <program>`.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT VAPIPE_ARM64_SYSROOT)
  if(DEFINED ENV{VAPIPE_ARM64_SYSROOT})
    set(VAPIPE_ARM64_SYSROOT "$ENV{VAPIPE_ARM64_SYSROOT}")
  else()
    set(VAPIPE_ARM64_SYSROOT /opt/vapipe-arm64-sysroot)
  endif()
endif()
set(VAPIPE_ARM64_SYSROOT "${VAPIPE_ARM64_SYSROOT}" CACHE PATH "arm64 sysroot (scripts/setup-cross-arm64.sh)")
if(NOT EXISTS "${VAPIPE_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
  message(FATAL_ERROR "no arm64 sysroot at ${VAPIPE_ARM64_SYSROOT}: run scripts/setup-cross-arm64.sh (as root)")
endif()
# try_compile projects see the toolchain file again; the sysroot must reach them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES VAPIPE_ARM64_SYSROOT)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_SYSROOT "${VAPIPE_ARM64_SYSROOT}")
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries, headers and CMake packages only from the sysroot; programs (protoc, pkg-config) from the host.
set(CMAKE_FIND_ROOT_PATH "${VAPIPE_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config (the full build's FFmpeg/GStreamer) reads the sysroot's .pc files and prefixes their paths.
set(ENV{PKG_CONFIG_LIBDIR}
    "${VAPIPE_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${VAPIPE_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${VAPIPE_ARM64_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L "${VAPIPE_ARM64_SYSROOT}")
