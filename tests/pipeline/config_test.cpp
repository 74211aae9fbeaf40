#include "pipeline/config.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "support/test_data.hpp"

namespace vapipe::pipeline {
namespace {

// sophon-pipeline's configs/cameras_yolov5.json, verbatim (blank lines included).
constexpr const char* kSophonYolov5 = R"({
  "cards": [
    {
      "devid": 0,
      "cameras": [
        {
          "address": "./elevator-1080p-25fps-4000kbps.h264",
          "chan_num": 1,
          "model_names": ["ex1"]
        }
      ]
    }
  ],
  "pipeline": {
    "preprocess": {
      "thread_num": 4,
      "queue_size": 16
    },
    "inference": {
      "thread_num": 1,
      "queue_size": 16
    },
    "postprocess": {
      "thread_num": 4,
      "queue_size": 16
    }
  },
  "models":[
    {
      "name": "ex1",
      "path": "your_bmodel_path.bmodel",
      "model_type": "yolov5s",
      "skip_frame_num": 0,
      "output_path": "output_path",

      "obj_threshold": 0.5,
      "nms_threshold": 0.5,
      "class_threshold": 0.5

    }
  ]
})";

// sophon-pipeline's configs/cameras_multi.json: no model_type, no output_path, class_num given, two models.
constexpr const char* kSophonMulti = R"({
  "cards": [{"devid": 0, "cameras": [{"address": "./elevator-1080p-25fps-4000kbps.h264", "chan_num": 1,
                                        "model_names": ["ex1", "ex2"]}]}],
  "pipeline": {"preprocess": {"thread_num": 4, "queue_size": 16}, "inference": {"thread_num": 1, "queue_size": 16},
               "postprocess": {"thread_num": 4, "queue_size": 16}},
  "models":[
    {"name": "ex1", "path": "your_bmodel_1_path.bmodel", "skip_frame_num": 1,
     "obj_threshold": 0.5, "nms_threshold": 0.5, "class_threshold": 0.5, "class_num": 80},
    {"name": "ex2", "path": "your_bmodel_2_path.bmodel", "skip_frame_num": 1,
     "obj_threshold": 0.5, "nms_threshold": 0.5, "class_threshold": 0.5, "class_num": 80}
  ]
})";

TEST(PipelineConfig, SophonYolov5ExampleParsesAsIs) {
  const PipelineConfig config = parse_config(kSophonYolov5, "cameras_yolov5.json");
  ASSERT_EQ(config.cards.size(), 1u);
  EXPECT_EQ(config.cards[0].devid, 0);
  ASSERT_EQ(config.cards[0].cameras.size(), 1u);
  const CameraConfig& camera = config.cards[0].cameras[0];
  EXPECT_EQ(camera.address, "./elevator-1080p-25fps-4000kbps.h264");
  EXPECT_EQ(camera.chan_num, 1);
  EXPECT_EQ(camera.model_names, std::vector<std::string>{"ex1"});
  EXPECT_TRUE(camera.loop);
  EXPECT_TRUE(camera.pace);
  EXPECT_EQ(camera.rtsp_transport, RtspTransport::kTcp);
  EXPECT_FALSE(camera.skip_loop_filter);
  EXPECT_EQ(config.preprocess.thread_num, 4);
  EXPECT_EQ(config.preprocess.queue_size, 16);
  EXPECT_EQ(config.inference.thread_num, 1);
  EXPECT_EQ(config.postprocess.thread_num, 4);
  EXPECT_FALSE(config.inference.blocking);
  ASSERT_EQ(config.models.size(), 1u);
  const ModelConfig& model = config.models[0];
  EXPECT_EQ(model.name, "ex1");
  EXPECT_EQ(model.path, "your_bmodel_path.bmodel");
  EXPECT_EQ(model.model_type, "yolov5s");
  EXPECT_EQ(model.skip_frame_num, 0);
  // sophon's placeholder: no video output, as in sophon-pipeline (kept to be logged).
  EXPECT_FALSE(model.output_path.has_value());
  EXPECT_EQ(model.ignored_output_path, "output_path");
  EXPECT_FLOAT_EQ(model.obj_threshold.value(), 0.5f);
  EXPECT_FLOAT_EQ(model.nms_threshold, 0.5f);
  EXPECT_FLOAT_EQ(model.class_threshold.value(), 0.5f);
  EXPECT_FALSE(model.class_num.has_value());
  EXPECT_EQ(model.output_mode, OutputMode::kPassthrough);
  EXPECT_EQ(model.batch_timeout_ms, 5);
  EXPECT_EQ(config.stats.interval_ms, 1000);
}

TEST(PipelineConfig, SophonMultiModelExampleExpandsChannelsInSophonOrder) {
  const PipelineConfig config = parse_config(kSophonMulti, "cameras_multi.json");
  EXPECT_FALSE(config.models[0].model_type.has_value());
  EXPECT_FALSE(config.models[0].output_path.has_value());
  EXPECT_EQ(config.models[1].class_num, 80);
  EXPECT_EQ(config.models[1].skip_frame_num, 1);
  const auto channels = expand_channels(config);
  ASSERT_EQ(channels.size(), 2u);
  EXPECT_EQ(channels[0].model->name, "ex1");
  EXPECT_EQ(channels[1].model->name, "ex2");
  EXPECT_EQ(channels[1].channel, 1);
}

TEST(PipelineConfig, ChannelsPerModelThenPerCopy) {
  auto json = nlohmann::json::parse(kSophonMulti);
  json["cards"][0]["cameras"][0]["chan_num"] = 2;
  json["cards"].push_back(
      {{"devid", 1}, {"cameras", {{{"address", "b.mp4"}, {"chan_num", 1}, {"model_names", {"ex2"}}}}}});
  const PipelineConfig config = parse_config(json.dump(), "c.json");
  const auto channels = expand_channels(config);
  ASSERT_EQ(channels.size(), 5u);
  const char* expected_models[] = {"ex1", "ex1", "ex2", "ex2", "ex2"};
  for (std::size_t i = 0; i < channels.size(); ++i) {
    EXPECT_EQ(channels[i].channel, static_cast<int>(i));
    EXPECT_EQ(channels[i].model->name, expected_models[i]);
  }
  EXPECT_EQ(channels[4].devid, 1);
  EXPECT_EQ(channels[4].camera->address, "b.mp4");
}

TEST(PipelineConfig, ShippedExampleConfigsParse) {
  const auto dir = std::filesystem::path(VAPIPE_SOURCE_DIR) / "configs";
  const PipelineConfig sophon = load_config(dir / "cameras_yolov5.json");
  EXPECT_EQ(expand_channels(sophon).size(), 4u);
  EXPECT_EQ(sophon.models[0].path, "../shared/models/yolov5n.onnx");

  const PipelineConfig extended = load_config(dir / "cameras_yolov5_vapipe.json");
  const ModelConfig& model = extended.models[0];
  EXPECT_EQ(model.output_mode, OutputMode::kAnnotated);
  EXPECT_EQ(model.results_path, "out/yolov5n.jsonl");
  EXPECT_TRUE(extended.inference.blocking);
  EXPECT_TRUE(extended.stats.table);
  EXPECT_FALSE(extended.cards[0].cameras[0].loop);
  EXPECT_EQ(expand_channels(extended).size(), 5u);
  std::vector<std::string> names = {"person", "bicycle", "car"};
  const auto thresholds = model.score_thresholds(names);
  ASSERT_EQ(thresholds.per_class.size(), 3u);
  EXPECT_FLOAT_EQ(thresholds.for_class(0), 0.4f);
  EXPECT_FLOAT_EQ(thresholds.for_class(1), 0.25f);
  EXPECT_FLOAT_EQ(thresholds.for_class(2), 0.5f);
  EXPECT_FLOAT_EQ(thresholds.obj_threshold, 0.25f);
  names = {"dog"};
  EXPECT_THROW(model.score_thresholds(names), Error);
}

// sophon-pipeline's yolact demo config (configs/cameras_yolact.json, verbatim): yolact_base is instance
// segmentation, vapipe's yolov8-seg task, which reads obj_threshold and nms_threshold only (no class_threshold
// required). A task's own name wins over the yolov8* prefix.
TEST(PipelineConfig, YolactConfigMapsToTheSegmentationTask) {
  const auto dir = std::filesystem::path(VAPIPE_SOURCE_DIR) / "configs";
  const PipelineConfig config = load_config(dir / "cameras_yolact.json");
  ASSERT_EQ(config.models.size(), 1u);
  const ModelConfig& model = config.models[0];
  ASSERT_TRUE(model.model_type.has_value());
  EXPECT_EQ(model_family(*model.model_type), "yolov8-seg");
  EXPECT_FALSE(model.class_threshold.has_value());
  EXPECT_FLOAT_EQ(model.score_thresholds({}, true, {}).conf_threshold, 0.3f);
  EXPECT_EQ(model_family("yolov8-seg"), "yolov8-seg");
  EXPECT_EQ(model_family("yolact_im700"), "yolov8-seg");
  EXPECT_EQ(model_family("yolov8n"), "yolov8");
}

// ---- one test per kind of error: the message names the file and the key path ----

// Applies `edit` to the sophon example and returns the error message (empty when it parses).
template <typename Edit>
std::string error_of(Edit edit) {
  auto json = nlohmann::json::parse(kSophonYolov5);
  edit(json);
  try {
    parse_config(json.dump(), "cameras.json");
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

TEST(PipelineConfigErrors, WrongTypeNamesKeyPathAndValue) {
  EXPECT_EQ(error_of([](auto& j) { j["models"][0]["obj_threshold"] = "high"; }),
            R"(cameras.json: models[0].obj_threshold: expected a number in [0, 1], got "high")");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0]["chan_num"] = "4"; }),
            R"(cameras.json: cards[0].cameras[0].chan_num: expected an integer in [1, 256], got "4")");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0]["chan_num"] = 1.5; }),
            "cameras.json: cards[0].cameras[0].chan_num: expected an integer in [1, 256], got 1.5");
  EXPECT_EQ(error_of([](auto& j) { j["models"][0]["path"] = 3; }),
            "cameras.json: models[0].path: expected a string, got 3");
  EXPECT_EQ(error_of([](auto& j) { j["cards"] = nlohmann::json::object(); }),
            "cameras.json: cards: expected an array, got an object");
  EXPECT_EQ(error_of([](auto& j) { j["pipeline"]["inference"]["blocking"] = 1; }),
            "cameras.json: pipeline.inference.blocking: expected true or false, got 1");
}

TEST(PipelineConfigErrors, OutOfRange) {
  EXPECT_EQ(error_of([](auto& j) { j["models"][0]["nms_threshold"] = 1.5; }),
            "cameras.json: models[0].nms_threshold: expected a number in [0, 1], got 1.5");
  EXPECT_EQ(error_of([](auto& j) { j["pipeline"]["preprocess"]["queue_size"] = 0; }),
            "cameras.json: pipeline.preprocess.queue_size: expected an integer in [1, 4096], got 0");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["devid"] = -1; }),
            "cameras.json: cards[0].devid: expected an integer in [0, 255], got -1");
  EXPECT_EQ(
      error_of([](auto& j) { j["models"][0]["skip_frame_num"] = 18446744073709551615u; }),
      "cameras.json: models[0].skip_frame_num: expected an integer in [0, 1000], got 18446744073709551615");
}

// Issue 17: a NUL cut the path short silently, a newline or ESC in an address forged log lines and
// terminal escapes; a file: URL passed the checks and failed when the channel opened.
TEST(PipelineConfigErrors, AddressesWithControlCharactersOrFileUrlsAreRefused) {
  const auto address_error = [](const std::string& address) {
    return error_of([&](auto& j) { j["cards"][0]["cameras"][0]["address"] = address; });
  };
  EXPECT_EQ(address_error(std::string("clip.mp4\0.txt", 12)),
            "cameras.json: cards[0].cameras[0].address: control character U+0000 at byte 8 (not part of any "
            "camera address or file name)");
  EXPECT_EQ(address_error("rtsp://cam/1\n[2026-12-06 00:00:00.000] [error] forged"),
            "cameras.json: cards[0].cameras[0].address: control character U+000A at byte 12 (not part of any "
            "camera address or file name)");
  EXPECT_NE(address_error("clip\x1b[2J.mp4").find("control character U+001B at byte 4"), std::string::npos);
  EXPECT_NE(address_error("clip\xc2\x9b"
                          "2J.mp4")
                .find("control character U+009B at byte 4"),
            std::string::npos);
  EXPECT_NE(address_error("FILE:///videos/a.mp4")
                .find("address: a file: URL is not supported: give the file as a path"),
            std::string::npos);
  // Printable UTF-8 stays a valid address.
  EXPECT_EQ(address_error("/videos/caméra-été.mp4"), "");
}

TEST(PipelineConfigErrors, MissingRequiredKey) {
  EXPECT_EQ(error_of([](auto& j) { j["models"][0].erase("class_threshold"); }),
            "cameras.json: models[0].class_threshold: required key is missing");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0].erase("address"); }),
            "cameras.json: cards[0].cameras[0].address: required key is missing");
  EXPECT_EQ(error_of([](auto& j) { j["pipeline"]["postprocess"].erase("thread_num"); }),
            "cameras.json: pipeline.postprocess.thread_num: required key is missing");
  EXPECT_EQ(error_of([](auto& j) { j.erase("models"); }), "cameras.json: models: required key is missing");
}

TEST(PipelineConfigErrors, UnknownKey) {
  const std::string message = error_of([](auto& j) { j["models"][0]["obj_treshold"] = 0.5; });
  EXPECT_TRUE(
      message.starts_with("cameras.json: models[0].obj_treshold: unknown key (allowed here: name, path,"))
      << message;
  EXPECT_TRUE(error_of([](auto& j) { j["extra"] = 1; }).starts_with("cameras.json: extra: unknown key"));
  EXPECT_TRUE(error_of([](auto& j) {
                j["pipeline"]["decode"] = nlohmann::json::object();
              }).starts_with("cameras.json: pipeline.decode: unknown key"));
}

TEST(PipelineConfigErrors, DuplicateModelName) {
  EXPECT_EQ(error_of([](auto& j) { j["models"].push_back(j["models"][0]); }),
            R"(cameras.json: models[1].name: duplicate model name "ex1" (also models[0].name))");
}

TEST(PipelineConfigErrors, CameraReferencesUnknownModel) {
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0]["model_names"].push_back("ex2"); }),
            R"(cameras.json: cards[0].cameras[0].model_names[1]: unknown model "ex2" (models[] has "ex1"))");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0]["model_names"] = nlohmann::json::array(); }),
            "cameras.json: cards[0].cameras[0].model_names: expected a non-empty array");
}

TEST(PipelineConfigErrors, BadChoices) {
  EXPECT_EQ(
      error_of([](auto& j) { j["models"][0]["output_mode"] = "overlay"; }),
      R"(cameras.json: models[0].output_mode: expected one of "passthrough" | "annotated" | "results", got "overlay")");
  EXPECT_EQ(error_of([](auto& j) { j["cards"][0]["cameras"][0]["rtsp_transport"] = "http"; }),
            R"(cameras.json: cards[0].cameras[0].rtsp_transport: expected one of "tcp" | "udp", got "http")");
  EXPECT_TRUE(error_of([](auto& j) {
                j["cards"][0]["cameras"][0]["skip_loop_filter"] = "yes";
              }).starts_with("cameras.json: cards[0].cameras[0].skip_loop_filter: expected true or false"));
  EXPECT_TRUE(error_of([](auto& j) {
                j["models"][0]["model_type"] = "ssd";
              }).starts_with(R"(cameras.json: models[0].model_type: unsupported model type "ssd")"));
  EXPECT_EQ(error_of([](auto& j) { j["models"][0]["output_mode"] = "results"; }),
            R"(cameras.json: models[0].output_mode: "results" needs results_path)");
}

// What counts as sophon's "no output" placeholder: neither a scheme nor an extension, and no output_format.
TEST(PipelineConfig, OutputPathPlaceholderAndOutputFormat) {
  const auto model_of = [](const nlohmann::json& fields) {
    auto json = nlohmann::json::parse(kSophonYolov5);
    json["models"][0].update(fields);
    return parse_config(json.dump(), "cameras.json").models[0];
  };
  for (const std::string placeholder : {"output_path", "none", "videos/out"}) {
    const ModelConfig model = model_of({{"output_path", placeholder}});
    EXPECT_FALSE(model.output_path.has_value()) << placeholder;
    EXPECT_EQ(model.ignored_output_path, placeholder);
  }
  for (const std::string output : {"out/det.mp4", "det.h264", "tcp://127.0.0.1:9000", "udp://10.0.0.1:9000",
                                   "rtsp://127.0.0.1:8554/live", "rtmp://h/app/live", "out.mp5"}) {
    const ModelConfig model = model_of({{"output_path", output}});
    EXPECT_EQ(model.output_path, output);
    EXPECT_FALSE(model.ignored_output_path.has_value()) << output;
  }
  // With a muxer named, any file name is one.
  const ModelConfig named = model_of({{"output_path", "out/det"}, {"output_format", "matroska"}});
  EXPECT_EQ(named.output_path, "out/det");
  EXPECT_EQ(named.output_format, "matroska");
  EXPECT_EQ(model_of({{"output_path", "tcp://127.0.0.1:9000"}, {"output_format", "mpegts"}}).output_format,
            "mpegts");
  EXPECT_EQ(
      error_of([](auto& j) { j["models"][0]["output_format"] = "mpeg-ts"; }),
      R"(cameras.json: models[0].output_format: "mpeg-ts" is not an FFmpeg muxer (e.g. "mpegts", "h264", "mp4"))");
}

TEST(PipelineConfigErrors, ClassThresholds) {
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0]["class_thresholds"] = {0.5, "x"};
            }),
            R"(cameras.json: models[0].class_thresholds[1]: expected a number in [0, 1], got "x")");
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0]["class_thresholds"] = {{"person", 2}};
            }),
            "cameras.json: models[0].class_thresholds.person: expected a number in [0, 1], got 2");
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0]["class_num"] = 1;
              j["models"][0]["class_thresholds"] = {0.5, 0.5};
            }),
            "cameras.json: models[0].class_thresholds: has 2 entries but class_num is 1");
}

TEST(PipelineConfig, ServiceSectionsDefaultsAndValues) {
  auto json = nlohmann::json::parse(kSophonYolov5);
  EXPECT_FALSE(parse_config(json.dump(), "c.json").http);
  json["http"] = nlohmann::json::object();
  json["rtsp_server"] = {{"port", 8555}};
  json["mqtt"] = {{"host", "127.0.0.1"}, {"topic", "site/cams"}, {"qos", 1}};
  const PipelineConfig config = parse_config(json.dump(), "c.json");
  ASSERT_TRUE(config.http && config.rtsp_server && config.mqtt);
  EXPECT_EQ(config.http->bind, "127.0.0.1");  // loopback unless configured
  EXPECT_EQ(config.http->port, 8080);
  EXPECT_FALSE(config.http->token);
  EXPECT_EQ(config.rtsp_server->bind, "127.0.0.1");
  EXPECT_EQ(config.rtsp_server->port, 8555);
  EXPECT_EQ(config.mqtt->topic, "site/cams");
  EXPECT_EQ(config.mqtt->port, 1883);
  EXPECT_EQ(config.mqtt->qos, 1);
  json["http"] = {{"bind", "0.0.0.0"}, {"token", "s3cret"}};
  EXPECT_EQ(parse_config(json.dump(), "c.json").http->token, "s3cret");
}

TEST(PipelineConfigErrors, ServiceSections) {
  EXPECT_EQ(error_of([](auto& j) {
              j["http"] = {{"bind", "0.0.0.0"}};
            }),
            "cameras.json: http.token: required when http.bind (0.0.0.0) is not a loopback address: the "
            "control API can add and remove cameras");
  EXPECT_EQ(error_of([](auto& j) {
              j["http"] = {{"port", 70000}};
            }),
            "cameras.json: http.port: expected an integer in [0, 65535], got 70000");
  EXPECT_EQ(error_of([](auto& j) {
              j["rtsp_server"] = {{"prot", 8554}};
            }),
            "cameras.json: rtsp_server.prot: unknown key (allowed here: bind, port)");
  EXPECT_EQ(error_of([](auto& j) {
              j["mqtt"] = {{"port", 1883}};
            }),
            "cameras.json: mqtt.host: required key is missing");
  EXPECT_EQ(error_of([](auto& j) {
              j["mqtt"] = {{"host", "h"}, {"topic", "a/#"}};
            }),
            R"(cameras.json: mqtt.topic: wildcards (+, #) cannot be published to, got "a/#")");
  EXPECT_EQ(error_of([](auto& j) {
              j["mqtt"] = {{"host", "h"}, {"qos", 3}};
            }),
            "cameras.json: mqtt.qos: expected an integer in [0, 2], got 3");
  EXPECT_EQ(error_of([](auto& j) {
              j["mqtt"] = {{"host", "h"}, {"password", "pw"}};
            }),
            "cameras.json: mqtt.password: needs mqtt.username (MQTT sends a password only with a user name)");
  // A video mode without output_path is fine only when something serves the video live.
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0].erase("output_path");
              j["models"][0]["output_mode"] = "annotated";
            }),
            "cameras.json: models[0].output_mode: \"annotated\" needs output_path (or an rtsp_server or http "
            "section to serve it live)");
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0].erase("output_path");
              j["models"][0]["output_mode"] = "annotated";
              j["rtsp_server"] = nlohmann::json::object();
            }),
            "");
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("localhost"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("192.168.1.5"));
}

TEST(PipelineConfigErrors, DuplicateJsonKey) {
  const std::string text = R"({"cards": [{"devid": 0, "devid": 1, "cameras": []}], "models": []})";
  try {
    parse_config(text, "cameras.json");
    FAIL() << "accepted a duplicate key";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cameras.json: cards[0].devid: duplicate key");
  }
}

TEST(PipelineConfigErrors, InvalidJsonSaysWhere) {
  try {
    parse_config("{\n  \"cards\": [,]\n}", "cameras.json");
    FAIL() << "accepted invalid JSON";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_TRUE(message.starts_with("cameras.json: not valid JSON: parse error at line 2, column"))
        << message;
  }
  EXPECT_THROW(parse_config("[1, 2]", "cameras.json"), Error);
}

// Found by fuzz/config_fuzzer: a number beyond double's range made the JSON parser throw out_of_range,
// which escaped parse_config as something other than vapipe::Error.
TEST(PipelineConfigErrors, NumberBeyondDoubleRangeIsAConfigError) {
  try {
    parse_config(R"({"cards": [{"cameras": [{"address": "a.mp4", "chan_num": 21e309}]}]})", "cameras.json");
    FAIL() << "accepted 21e309";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cameras.json: not valid JSON: number overflow parsing '21e309'");
  }
}

TEST(PipelineConfigErrors, TooLargeAndMissingFiles) {
  const auto dir = test::scratch_dir();
  const auto big = dir / "big.json";
  {
    std::ofstream out(big);
    out << std::string(kMaxConfigBytes + 1, ' ');
  }
  try {
    load_config(big);
    FAIL() << "accepted a file over the size bound";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              big.string() + ": 1048577 bytes is more than a config may have (1048576 bytes)");
  }
  EXPECT_THROW(parse_config(std::string(kMaxConfigBytes + 1, ' '), "x.json"), Error);
  try {
    load_config(dir / "absent.json");
    FAIL() << "opened a missing file";
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with((dir / "absent.json").string() + ": cannot read"))
        << e.what();
  }
}

// Issue 19: the face recognition and chain keys.
TEST(PipelineConfig, SecondaryGalleryAndRecognitionKeys) {
  auto json = nlohmann::json::parse(kSophonYolov5);
  json["models"][0]["secondary"] = {{{"model", "pose"}, {"classes", {"person"}}, {"max_objects", 3}}};
  json["models"][0]["gallery"] = "faces";
  json["models"][0]["recognition_threshold"] = 0.42;
  const ModelConfig model = parse_config(json.dump(), "cameras.json").models[0];
  ASSERT_TRUE(model.secondary);
  EXPECT_EQ(model.secondary->model, "pose");
  EXPECT_EQ(model.secondary->classes, std::vector<std::string>{"person"});
  EXPECT_EQ(model.secondary->max_objects, 3);
  EXPECT_EQ(model.gallery, "faces");
  EXPECT_FLOAT_EQ(*model.recognition_threshold, 0.42f);

  EXPECT_EQ(
      error_of([](auto& j) {
        j["models"][0]["secondary"] = {{{"model", "a"}}, {{"model", "b"}}};
      }),
      "cameras.json: models[0].secondary: has 2 entries; one network runs on a model's objects for now");
  EXPECT_EQ(
      error_of([](auto& j) {
        j["models"][0]["secondary"] = {{{"model", "a"}, {"max", 2}}};
      }),
      "cameras.json: models[0].secondary[0].max: unknown key (allowed here: model, classes, max_objects)");
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0]["secondary"] = {{{"model", "a"}, {"max_objects", 0}}};
            }),
            "cameras.json: models[0].secondary[0].max_objects: expected an integer in [1, 256], got 0");
  EXPECT_EQ(error_of([](auto& j) {
              j["models"][0]["secondary"] = {{{"classes", {"person"}}}};
            }),
            "cameras.json: models[0].secondary[0].model: required key is missing");
  EXPECT_EQ(
      error_of([](auto& j) { j["models"][0]["recognition_threshold"] = 0.5; }),
      R"(cameras.json: models[0].recognition_threshold: is used only with "gallery" (a folder of known faces))");
}

// ---- mosaic (issue 20) ----

TEST(PipelineConfig, MosaicKeyDefaultsAndValues) {
  auto json = nlohmann::json::parse(kSophonYolov5);
  json["mosaic"] = {{"output_path", "out/mosaic.mp4"}};
  PipelineConfig config = parse_config(json.dump(), "cameras.json");
  ASSERT_TRUE(config.mosaic);
  EXPECT_EQ(config.mosaic->name, "mosaic");
  EXPECT_TRUE(config.mosaic->channels.empty());
  EXPECT_EQ(config.mosaic->columns, 0);
  EXPECT_FALSE(config.mosaic->tile_width);
  EXPECT_FALSE(config.mosaic->fps);
  EXPECT_FALSE(config.mosaic->from_demo);
  EXPECT_FALSE(config.rtsp_server);

  json["cards"][0]["cameras"][0]["chan_num"] = 4;
  json["rtsp_server"] = {{"port", 0}};
  json["mosaic"] = {{"name", "wall"},           {"channels", {3, 1}}, {"columns", 1},
                    {"tile_width", 640},        {"tile_height", 360}, {"fps", 12.5},
                    {"results_path", "m.jsonl"}};
  config = parse_config(json.dump(), "cameras.json");
  EXPECT_EQ(config.mosaic->name, "wall");
  EXPECT_EQ(config.mosaic->channels, (std::vector<int>{3, 1}));
  EXPECT_EQ(config.mosaic->columns, 1);
  EXPECT_EQ(*config.mosaic->tile_width, 640);
  EXPECT_EQ(*config.mosaic->tile_height, 360);
  EXPECT_DOUBLE_EQ(*config.mosaic->fps, 12.5);
  EXPECT_EQ(config.mosaic->results_path, "m.jsonl");
}

TEST(PipelineConfigErrors, Mosaic) {
  EXPECT_EQ(
      error_of([](auto& j) { j["mosaic"] = nlohmann::json::object(); }),
      "cameras.json: mosaic: needs output_path or an rtsp_server section (it serves the picture at /mosaic)");
  EXPECT_EQ(error_of([](auto& j) {
              j["mosaic"] = {{"output_path", "m.mp4"}, {"channels", {0, 1}}};
            }),
            "cameras.json: mosaic.channels[1]: no channel 1 (the config opens channels 0-0)");
  EXPECT_EQ(error_of([](auto& j) {
              j["mosaic"] = {{"output_path", "m.mp4"}, {"channels", {0, 0}}};
            }),
            "cameras.json: mosaic.channels[1]: channel 0 is listed twice");
  EXPECT_EQ(
      error_of([](auto& j) {
        j["mosaic"] = {{"output_path", "m.mp4"}, {"tile_width", 320}};
      }),
      "cameras.json: mosaic.tile_height: required with mosaic.tile_width (a tile size is both or neither)");
  EXPECT_EQ(
      error_of([](auto& j) {
        j["mosaic"] = {{"output_path", "m.mp4"}, {"name", "a/b"}};
      }),
      "cameras.json: mosaic.name: \"a/b\": only letters, digits, '_', '-' and '.' (it is the RTSP path)");
  EXPECT_EQ(error_of([](auto& j) {
              j["mosaic"] = {{"output_path", "m.mp4"}, {"size", 2}};
            }),
            "cameras.json: mosaic.size: unknown key (allowed here: name, channels, columns, tile_width, "
            "tile_height, fps, tile_scale, output_path, output_format, results_path)");
}

// sophon's video_stitch demo opens 4 channels whatever its config's chan_num (main.cpp: total_num = 4, each
// card's addresses in turn), so its config, by its name, brings the demo's mosaic and RTSP server.
TEST(PipelineConfig, VideoStitchDemoConfigRunsAsTheDemo) {
  const auto dir = std::filesystem::path(VAPIPE_SOURCE_DIR) / "configs";
  const PipelineConfig config = load_config(dir / "cameras_video_stitch.json");
  const auto channels = expand_channels(config);
  ASSERT_EQ(channels.size(), 4u);
  for (const auto& channel : channels) {
    EXPECT_EQ(channel.camera->address, "./elevator-1080p-25fps-4000kbps.h264");
    EXPECT_EQ(channel.model->name, "ex1");
  }
  ASSERT_TRUE(config.mosaic);
  EXPECT_TRUE(config.mosaic->from_demo);
  EXPECT_EQ(config.mosaic->name, "bitmain");
  EXPECT_DOUBLE_EQ(config.mosaic->tile_scale, 0.5);
  EXPECT_DOUBLE_EQ(*config.mosaic->fps, 12.5);  // 25 / (skip_frame_num 1 + 1)
  ASSERT_TRUE(config.rtsp_server);
  EXPECT_EQ(config.rtsp_server->bind, "127.0.0.1");
  EXPECT_EQ(config.rtsp_server->port, 554);
  ASSERT_FALSE(config.rtsp_server->other_ports.empty());
  EXPECT_EQ(config.rtsp_server->other_ports.front(), 1554);

  // Two cards of one address each: two channels each, addresses repeated in turn.
  auto json = nlohmann::json::parse(kSophonYolov5);
  json["cards"].push_back(json["cards"][0]);
  json["cards"][1]["cameras"][0]["address"] = "b.h264";
  json["cards"][0]["cameras"].push_back(json["cards"][0]["cameras"][0]);
  json["cards"][0]["cameras"][1]["address"] = "a2.h264";
  json["cards"][0]["cameras"][1]["chan_num"] = 3;
  const PipelineConfig two = parse_config(json.dump(), "cameras_video_stitch.json");
  std::vector<std::string> addresses;
  for (const auto& channel : expand_channels(two)) addresses.push_back(channel.camera->address);
  EXPECT_EQ(addresses, (std::vector<std::string>{"./elevator-1080p-25fps-4000kbps.h264", "a2.h264", "b.h264",
                                                 "b.h264"}));
  // Any other name runs the config as it says; an explicit mosaic key wins over the name.
  EXPECT_FALSE(parse_config(json.dump(), "cameras.json").mosaic);
  json["mosaic"] = {{"output_path", "m.mp4"}};
  const PipelineConfig explicit_key = parse_config(json.dump(), "cameras_video_stitch.json");
  EXPECT_EQ(expand_channels(explicit_key).size(), 5u);
  EXPECT_EQ(explicit_key.mosaic->name, "mosaic");
  EXPECT_FALSE(explicit_key.rtsp_server);
}

}  // namespace
}  // namespace vapipe::pipeline
