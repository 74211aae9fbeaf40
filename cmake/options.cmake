# Every build option of the project lives here.
option(VAPIPE_BUILD_TESTS "Build the GoogleTest suites" ON)
option(VAPIPE_BUILD_BENCH "Build the Google Benchmark kernels" ON)
option(VAPIPE_WERROR "Treat compiler warnings as errors (CI turns this on)" OFF)
set(VAPIPE_SANITIZE "" CACHE STRING "Sanitizer build: address | thread | empty")
# libFuzzer build (fuzz/, scripts/fuzz.sh): only the fuzz targets and the sources they exercise, all under
# ASan+UBSan with coverage instrumentation. Clang only (GCC has no libFuzzer).
option(VAPIPE_FUZZ "Build only the libFuzzer targets in fuzz/ (clang, ASan+UBSan)" OFF)
# The runtime side only: core, infer, compiler, vision, models and the vapipe CLI without `run` (no FFmpeg,
# GStreamer, Boost or mosquitto). The aarch64 cross build uses it (docs/deploy-arm64.md).
option(VAPIPE_RUNTIME_ONLY "Build only the runtime side (no video pipeline, no servers, no `vapipe run`)" OFF)

# Linker: LLVM's lld where the compiler can use it (scripts/setup.sh installs Debian's lld). GNU ld took 5.8 s
# to link one ASan+UBSan test binary (control_api_tests) where lld takes 1.6 s, and CI links some 60 binaries
# across its builds on two cores. OFF (or no lld) keeps the compiler's default linker.
option(VAPIPE_USE_LLD "Link with lld when the compiler accepts -fuse-ld=lld" ON)
if(VAPIPE_USE_LLD)
  include(CheckLinkerFlag)
  check_linker_flag(CXX -fuse-ld=lld VAPIPE_LINKER_LLD_WORKS)
  if(VAPIPE_LINKER_LLD_WORKS)
    add_link_options(-fuse-ld=lld)
  endif()
endif()

set(VAPIPE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(VAPIPE_WERROR)
  list(APPEND VAPIPE_WARNINGS -Werror)
endif()
# Unity sources (CI's builds: docs/reliability.md, "CI"): GCC takes every .cpp merged into a unity file for a
# header, so a class of one file with a member of its own anonymous-namespace type (a pimpl's state) looks like
# a header-defined class using an internal type (-Wsubobject-linkage). Compiled file by file it is not.
if(CMAKE_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND VAPIPE_WARNINGS -Wno-subobject-linkage)
endif()

# Sanitizer builds (scripts/sanitize.sh, docs/reliability.md "Sanitizers"). Both compile at -O1 with line tables
# (-g1): enough for symbolized reports, and on CI's two cores far cheaper to compile than -O3 -g.
if(VAPIPE_SANITIZE STREQUAL "address")
  # ASan and UBSan together; UB aborts the test instead of printing and going on.
  set(vapipe_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${vapipe_sanitize_flags} -O1 -g1)
  add_link_options(${vapipe_sanitize_flags})
  # Code that is not hot (tests, the CLI's commands, the Boost.Beast servers) compiles at -O0 here: UBSan's
  # instrumentation at -O1 is what makes this build slow (GCC 12, src/server/http_server.cpp: 160 s of CPU
  # with ASan+UBSan at -O1, 58 s with ASan alone, 67 s with both at -O0), and -O0 loses no check.
  set(VAPIPE_SANITIZE_COLD_OPTIONS -O0)
elseif(VAPIPE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -O1 -g1)
  add_link_options(-fsanitize=thread)
elseif(NOT VAPIPE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "VAPIPE_SANITIZE=${VAPIPE_SANITIZE}: expected address, thread or empty")
endif()

if(VAPIPE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "VAPIPE_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Every UB report aborts, so libFuzzer keeps the input; -O1 keeps the build short and the stacks readable.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -O1 -g)
  add_link_options(-fsanitize=address,undefined)
endif()

# The test binaries' own code (tests/) compiles at -O1 in a Release build: what the tests time and exercise is
# the libraries' code, built -O3; the test files themselves (GoogleTest, nlohmann::json, Beast clients) are
# mostly templates, which GCC 12 compiles ~30 % faster at -O1 (control_api_test.cpp 29.5 -> 21.9 s,
# config_test.cpp 12.0 -> 8.2 s) with the same warnings. Sanitizer builds set their own levels above.
function(vapipe_test_code target)
  if(VAPIPE_SANITIZE STREQUAL "")
    target_compile_options(${target} PRIVATE $<$<CONFIG:Release>:-O1>)
  endif()
endfunction()

# Applies the project's warning set to one of our own targets (never to third-party code).
function(vapipe_target_warnings target)
  target_compile_options(${target} PRIVATE ${VAPIPE_WARNINGS})
endfunction()

# Marks a target whose speed does not matter (tests, the CLI's commands, the servers): in a sanitizer build
# it compiles with VAPIPE_SANITIZE_COLD_OPTIONS (see above); elsewhere nothing changes.
function(vapipe_cold_code target)
  if(VAPIPE_SANITIZE_COLD_OPTIONS)
    target_compile_options(${target} PRIVATE ${VAPIPE_SANITIZE_COLD_OPTIONS})
  endif()
endfunction()
