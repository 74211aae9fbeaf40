# Debian 12 packages only (scripts/setup.sh installs them); nothing is downloaded at build time.
find_package(dnnl 2.6 REQUIRED CONFIG)
find_package(ONNX REQUIRED CONFIG)
find_package(Protobuf REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED CONFIG)
find_package(CLI11 REQUIRED CONFIG)
find_package(fmt REQUIRED CONFIG)
find_package(spdlog REQUIRED CONFIG)
find_package(OpenCV 4 REQUIRED COMPONENTS core imgproc imgcodecs)
# The fuzz build does not build the runtime (oneDNN, OpenMP): clang would need libomp-dev for OpenMP.
if(NOT VAPIPE_FUZZ)
  find_package(OpenMP REQUIRED)
endif()
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
if(VAPIPE_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(VAPIPE_BUILD_BENCH AND NOT VAPIPE_RUNTIME_ONLY)
  find_package(benchmark REQUIRED CONFIG)
endif()
if(VAPIPE_RUNTIME_ONLY)
  return()  # what follows is the video pipeline's and the servers'
endif()
# FFmpeg 5.1 (Debian 12): demux/decode/encode/mux for the video pipeline (src/io).
pkg_check_modules(LIBAV REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
# src/server: embedded RTSP server (gst-rtsp-server + appsrc), HTTP/WebSocket (Boost.Beast, header-only),
# MQTT results (libmosquitto).
pkg_check_modules(GST_SERVER REQUIRED IMPORTED_TARGET gstreamer-rtsp-server-1.0 gstreamer-rtsp-1.0 gstreamer-app-1.0 gio-2.0)
find_package(Boost 1.81 REQUIRED)
pkg_check_modules(MOSQUITTO REQUIRED IMPORTED_TARGET libmosquitto)
