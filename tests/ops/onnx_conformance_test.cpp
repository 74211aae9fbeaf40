// The ONNX backend conformance suite through vapipe (issue 18). Debian's libonnx-testdata ships ONNX's node
// tests and the PyTorch-exported ones: a model.onnx, its inputs and the expected outputs as TensorProto files.
// Every test whose operators vapipe claims is compiled by the real compiler, run by the runtime (after a
// package round trip) and by the reference executor on the imported graph, and both results are compared
// with the expected outputs at the suite's own tolerance. One GoogleTest test per claimed operator
// (OnnxConformance/Op.Passes/<op>), so each operator is its own ctest (label onnx-conformance).
//
// Each test of the suite ends as one of
//   PASS     both results match the expected outputs, shapes exactly;
//   REFUSED  the compiler throws vapipe::Error (an unsupported attribute, opset or input type): not a failure,
//            the operator is claimed with that limit stated at compile time;
//   FAIL     anything else: a wrong value or shape, an error after a successful compile, a stray exception.
// A FAIL fails the test of every operator the model uses. With VAPIPE_CONFORMANCE_TABLE=<path> the binary
// writes the per-operator markdown table of docs/compiler.md ("ONNX conformance") when it exits.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <onnx/onnx_pb.h>

#include "compiler/compiler.hpp"
#include "compiler/onnx_model.hpp"
#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "core/package.hpp"
#include "ops/registry.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

// The ONNX operator types vapipe claims to compile: the registry's (src/ops/). Constant, Shape and Size are
// folded by the importer and never reach the runtime, so they are not operators of this table.
std::vector<std::string> claimed_onnx_ops() { return ops::claimed_onnx_ops(); }

bool reads_input(const ir::Graph& graph, int tensor) {
  for (const auto& node : graph.nodes) {
    if (std::find(node.inputs.begin(), node.inputs.end(), tensor) != node.inputs.end()) return true;
  }
  return std::find(graph.outputs.begin(), graph.outputs.end(), tensor) != graph.outputs.end();
}

// Debian's copy, or VAPIPE_ONNX_TESTDATA: another onnx/backend/test/data (a newer ONNX's), or hand-made tests in
// the same layout.
fs::path data_dir() {
  if (const char* env = std::getenv("VAPIPE_ONNX_TESTDATA"); env != nullptr && *env != '\0') return env;
  return "/usr/share/libonnx-testdata/data";
}
constexpr std::array<const char*, 3> kSuites = {"node", "pytorch-converted", "pytorch-operator"};

// onnx/backend/test/loader gives every on-disk test rtol 1e-3 and atol 1e-7; the runner compares with
// numpy.testing.assert_allclose(expected, actual, rtol, atol): |expected - actual| <= atol + rtol * |actual|,
// NaN equal to NaN, infinities equal when their signs are.
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-7;

struct Case {
  std::string name;  // suite/test, e.g. "node/test_conv_with_strides_padding"
  fs::path dir;
  std::int64_t opset = 0;
  std::set<std::string> ops;  // operator types of its nodes, Constant left out
};

enum class Verdict { kPass, kRefused, kFail };

struct Outcome {
  Verdict verdict = Verdict::kPass;
  std::string detail;                // REFUSED: the compile error's first line; FAIL: what differs
  bool constant_parameters = false;  // compiled with every input but the first as a constant
};

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string op_key(const onnx::NodeProto& node) {
  if (node.domain().empty() || node.domain() == "ai.onnx") return node.op_type();
  return node.domain() + "." + node.op_type();  // never claimed
}

// Every test of the three suites whose operators are all claimed, by name. Parsed once per process.
const std::vector<Case>& claimed_cases() {
  static const std::vector<Case> cases = [] {
    const auto claimed_list = claimed_onnx_ops();
    const std::set<std::string> claimed(claimed_list.begin(), claimed_list.end());
    std::vector<Case> found;
    for (const char* suite : kSuites) {
      const fs::path suite_dir = data_dir() / suite;
      if (!fs::is_directory(suite_dir)) continue;
      std::vector<fs::path> dirs;
      for (const auto& entry : fs::directory_iterator(suite_dir)) {
        if (entry.is_directory() && fs::exists(entry.path() / "model.onnx")) dirs.push_back(entry.path());
      }
      std::sort(dirs.begin(), dirs.end());
      for (const auto& dir : dirs) {
        Case c{fmt::format("{}/{}", suite, dir.filename().string()), dir, 0, {}};
        compiler::OnnxModel model;
        try {
          model = compiler::load_onnx((dir / "model.onnx").string());
        } catch (const Error& error) {
          // Not attributable to an operator (the training ops of ai.onnx.preview.training have no default
          // domain opset); said rather than dropped silently.
          std::cout << "[ UNREAD  ] " << c.name << ": " << first_line(error.what()) << "\n";
          continue;
        }
        c.opset = model.opset;
        for (const auto& node : model.proto.graph().node()) {
          if (op_key(node) != "Constant") c.ops.insert(op_key(node));
        }
        if (!c.ops.empty() && std::includes(claimed.begin(), claimed.end(), c.ops.begin(), c.ops.end()))
          found.push_back(std::move(c));
      }
    }
    return found;
  }();
  return cases;
}

onnx::TensorProto read_tensor_proto(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) fail("{}: not a TensorProto", path.string());
  return proto;
}

// input_0.pb, input_1.pb, ... (or output_N.pb) of one data set, in index order.
std::vector<onnx::TensorProto> read_tensor_protos(const fs::path& data_set, const std::string& kind) {
  std::vector<onnx::TensorProto> tensors;
  for (int i = 0;; ++i) {
    const fs::path path = data_set / fmt::format("{}_{}.pb", kind, i);
    if (!fs::exists(path)) break;
    tensors.push_back(read_tensor_proto(path));
  }
  return tensors;
}

// A test tensor's values as the model declares its type: ONNX 1.12's generator stores bfloat16 data as
// uint16 bit patterns (numpy has no bfloat16), which read_tensor would take for integers.
compiler::Constant decode(const onnx::TensorProto& proto, std::int32_t declared, const std::string& where) {
  compiler::Constant constant = compiler::read_tensor(proto, where);
  if (declared == onnx::TensorProto_DataType_BFLOAT16 &&
      proto.data_type() == onnx::TensorProto_DataType_UINT16) {
    for (auto& value : constant.values) {
      const std::uint32_t bits = static_cast<std::uint32_t>(value) << 16;
      float decoded = 0.0F;
      std::memcpy(&decoded, &bits, sizeof decoded);
      value = static_cast<double>(decoded);
    }
    constant.is_int = false;
  }
  return constant;
}

std::int32_t elem_type(const onnx::ValueInfoProto& info) { return info.type().tensor_type().elem_type(); }

// The graph inputs that are not initializers (IR < 4 lists initializers as inputs too), in order: the ones the
// data sets' input_N.pb feed.
std::vector<const onnx::ValueInfoProto*> real_inputs(const onnx::GraphProto& graph) {
  std::set<std::string> initializers;
  for (const auto& initializer : graph.initializer()) initializers.insert(initializer.name());
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& input : graph.input()) {
    if (initializers.count(input.name()) == 0) inputs.push_back(&input);
  }
  return inputs;
}

std::vector<fs::path> data_sets(const fs::path& dir) {
  std::vector<fs::path> sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && entry.path().filename().string().starts_with("test_data_set_"))
      sets.push_back(entry.path());
  }
  std::sort(sets.begin(), sets.end());
  return sets;
}

bool close_enough(double expected, double actual) {
  if (std::isnan(expected) || std::isnan(actual)) return std::isnan(expected) && std::isnan(actual);
  if (std::isinf(expected) || std::isinf(actual)) return expected == actual;
  return std::fabs(expected - actual) <= kAtol + kRtol * std::fabs(actual);
}

// Empty when `actual` matches `expected`; otherwise what differs, with the first mismatching index.
std::string compare(const std::string& what, const Shape& shape, const float* actual,
                    const compiler::Constant& expected) {
  if (shape != expected.shape) {
    return fmt::format("{}: shape {} but expected {}", what, shape_to_string(shape),
                       shape_to_string(expected.shape));
  }
  std::size_t mismatches = 0;
  std::size_t first = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < expected.values.size(); ++i) {
    const auto value = static_cast<double>(actual[i]);
    if (close_enough(expected.values[i], value)) continue;
    if (mismatches++ == 0) first = i;
    worst = std::max(worst, std::fabs(expected.values[i] - value));
  }
  if (mismatches == 0) return "";
  return fmt::format(
      "{}: {} of {} values differ; first at index {}: {} but expected {} (largest |difference| {})", what,
      mismatches, expected.values.size(), first, actual[first], expected.values[first], worst);
}

// A compiled test: the runtime's package, loaded back, and the imported graph for the reference executor.
struct Compiled {
  std::shared_ptr<const Model> model;
  ir::Graph reference_graph;
};

// Compiles like `vapipe compile --model-type raw --full-graph`, writes the package and loads it. Only
// compile_onnx's vapipe::Error is a refusal (empty result, `refusal` set); anything after it throws (FAIL).
std::optional<Compiled> compile(const fs::path& onnx_path, std::int64_t batch, const fs::path& scratch,
                                std::string& refusal) {
  compiler::CompileOptions options;
  options.onnx_path = onnx_path.string();
  options.name = "conformance";
  options.model_type = "raw";
  options.full_graph = true;
  options.batches = {batch};
  ir::Package package;
  try {
    package.networks.push_back(compiler::compile_onnx(options));
  } catch (const Error& error) {
    refusal = first_line(error.what());
    return std::nullopt;
  }
  const fs::path package_path = scratch / (onnx_path.stem().string() + ".vpk");
  ir::write_package(package, package_path.string());
  return Compiled{Model::load(package_path.string()), compiler::import_onnx_graph(options, batch)};
}

// The model with every input but the first made an initializer holding this data set's value: the node tests
// feed weights, shapes, indices and scales as graph inputs, where real models hold them as constants, and
// vapipe takes such parameters only as constants.
fs::path write_with_constant_parameters(const compiler::OnnxModel& model,
                                        const std::vector<onnx::TensorProto>& inputs,
                                        const fs::path& scratch) {
  onnx::ModelProto proto = model.proto;
  auto* graph = proto.mutable_graph();
  const auto feeds = real_inputs(model.proto.graph());
  for (std::size_t i = 1; i < feeds.size() && i < inputs.size(); ++i) {
    onnx::TensorProto value = inputs[i];
    value.set_name(feeds[i]->name());
    if (elem_type(*feeds[i]) == onnx::TensorProto_DataType_BFLOAT16) {
      // Stored as uint16 bit patterns (see decode): an f32 initializer with the decoded values instead.
      const auto decoded = decode(inputs[i], elem_type(*feeds[i]), feeds[i]->name());
      value.clear_raw_data();
      value.clear_int32_data();
      value.set_data_type(onnx::TensorProto_DataType_FLOAT);
      for (double v : decoded.values) value.add_float_data(static_cast<float>(v));
    }
    *graph->add_initializer() = std::move(value);
  }
  // Only the first input stays a graph input (initializers listed as inputs are dropped as well: IR >= 4).
  graph->mutable_input()->Clear();
  *graph->add_input() = *feeds.front();
  const fs::path path = scratch / "constant_parameters.onnx";
  std::ofstream out(path, std::ios::binary);
  if (!proto.SerializeToOstream(&out)) fail("{}: cannot write", path.string());
  return path;
}

// Compiles the model as it is; when the compiler refuses it and it has several inputs, again with the
// parameters (every input but the first) as constants. Runs each data set through the runtime and the
// reference executor. Throws on what is a FAIL: the caller turns any exception into one.
Outcome run_case(const Case& c, const fs::path& scratch) {
  const auto sets = data_sets(c.dir);
  if (sets.empty()) fail("no test_data_set_* folder");
  const compiler::OnnxModel model = compiler::load_onnx((c.dir / "model.onnx").string());
  const auto feeds = real_inputs(model.proto.graph());
  if (feeds.empty()) fail("the model has no inputs");
  // The importer takes dimension 0 of an input for the stage batch: compile at the export's own.
  const auto& dims = feeds.front()->type().tensor_type().shape().dim();
  const std::int64_t batch = !dims.empty() && dims[0].dim_value() > 0 ? dims[0].dim_value() : 1;

  std::string refusal;
  std::optional<Compiled> as_is = compile(c.dir / "model.onnx", batch, scratch, refusal);
  if (!as_is && feeds.size() < 2) return {Verdict::kRefused, refusal};
  std::vector<std::string> failures;
  for (const auto& set : sets) {
    const std::string label = set.filename().string();
    const auto input_protos = read_tensor_protos(set, "input");
    const auto output_protos = read_tensor_protos(set, "output");
    std::optional<Compiled> with_constants;
    if (!as_is) {
      with_constants =
          compile(write_with_constant_parameters(model, input_protos, scratch), batch, scratch, refusal);
      if (!with_constants) return {Verdict::kRefused, refusal};
    }
    const Compiled& compiled = as_is ? *as_is : *with_constants;
    const ir::Graph& graph = compiled.reference_graph;
    if (input_protos.size() != feeds.size())
      fail("{}: {} input files for {} graph inputs", label, input_protos.size(), feeds.size());
    if (output_protos.size() != static_cast<std::size_t>(model.proto.graph().output_size()))
      fail("{}: {} output files for {} graph outputs", label, output_protos.size(),
           model.proto.graph().output_size());
    std::vector<std::vector<float>> values;
    std::vector<ConstTensorView> views;
    for (std::size_t i = 0; i < graph.inputs.size(); ++i) {
      const auto input =
          decode(input_protos.at(i), elem_type(*feeds[i]), fmt::format("{}/input_{}.pb", label, i));
      const Shape& shape = graph.tensors.at(static_cast<std::size_t>(graph.inputs[i])).shape;
      // An input nothing reads (CastLike's `like`, only there for its type) may come with another shape than
      // the model declares (the castlike tests do so): it is fed as declared, with zeros.
      if (shape != input.shape && !reads_input(graph, graph.inputs[i])) {
        values.emplace_back(static_cast<std::size_t>(shape_volume(shape)), 0.0F);
        continue;
      }
      if (shape != input.shape) {
        fail("{}: input {} has shape {}, the compiled graph {}", label, i, shape_to_string(input.shape),
             shape_to_string(shape));
      }
      values.emplace_back(input.values.begin(), input.values.end());
    }
    for (std::size_t i = 0; i < values.size(); ++i)
      views.push_back(
          {values[i].data(), DType::kF32, graph.tensors.at(static_cast<std::size_t>(graph.inputs[i])).shape});

    const auto reference = compiler::run_reference(graph, values);
    ExecutionContext context(compiled.model->network(), {.threads = 1});
    context.run(views);
    if (reference.size() != output_protos.size() || context.output_count() != output_protos.size()) {
      fail("{}: {} reference and {} runtime outputs, {} expected", label, reference.size(),
           context.output_count(), output_protos.size());
    }
    for (std::size_t o = 0; o < output_protos.size(); ++o) {
      const auto expected =
          decode(output_protos[o], elem_type(model.proto.graph().output(static_cast<int>(o))),
                 fmt::format("{}/output_{}.pb", label, o));
      const Shape& reference_shape = graph.tensors.at(static_cast<std::size_t>(graph.outputs[o])).shape;
      for (auto message : {compare(fmt::format("{}: reference output {}", label, o), reference_shape,
                                   reference[o].data(), expected),
                           compare(fmt::format("{}: runtime output {}", label, o), context.output(o).shape,
                                   static_cast<const float*>(context.output(o).data), expected)}) {
        if (!message.empty()) failures.push_back(std::move(message));
      }
    }
  }
  if (!failures.empty()) return {Verdict::kFail, fmt::format("{}", fmt::join(failures, "; ")), !as_is};
  return {Verdict::kPass, "", !as_is};
}

// One outcome per case and process: a model with several claimed operators is run once.
const Outcome& outcome_of(const Case& c) {
  static std::map<std::string, Outcome> outcomes;
  if (const auto found = outcomes.find(c.name); found != outcomes.end()) return found->second;
  const fs::path scratch = test::scratch_dir();
  Outcome outcome;
  // The only guard: a per-test exception is that test's FAIL, and the next test still runs.
  try {
    outcome = run_case(c, scratch);
  } catch (const Error& error) {
    outcome = {Verdict::kFail, fmt::format("vapipe::Error: {}", first_line(error.what()))};
  } catch (const std::exception& error) {
    outcome = {Verdict::kFail, fmt::format("std::exception: {}", first_line(error.what()))};
  }
  fs::remove_all(scratch);
  return outcomes.emplace(c.name, std::move(outcome)).first->second;
}

// What the table row of one operator needs.
struct OpSummary {
  std::set<std::int64_t> opsets;
  int total = 0;
  int passed = 0;
  int passed_with_constants = 0;        // of `passed`: compiled with the parameters as constants
  std::map<std::string, int> refusals;  // condensed reason -> count
  std::vector<std::string> failed;
};

std::map<std::string, OpSummary>& summaries() {
  static std::map<std::string, OpSummary> all;
  return all;
}

// A compile error without the parts that differ per test: "model.onnx: node 'n' (op Conv, opset 11) is not
// supported: x" -> "Conv is not supported: x"; file, node, input and initializer names and element types dropped.
std::string condensed(const std::string& reason) {
  static const std::vector<std::pair<std::regex, std::string>> kRewrites = {
      {std::regex(R"(^[^ :]+\.onnx: )"), ""},
      {std::regex(R"(node '[^']*' \(op ([A-Za-z]+), opset \d+\)(:?) )"), "$1$2 "},
      {std::regex(R"(node '[^']*' \([A-Za-z]+\): )"), ""},
      {std::regex(R"(input '[^']*' has element type \d+; only float inputs are supported)"),
       "a non-float input (only float inputs are supported)"},
      {std::regex(R"(input '[^']*')"), "an input"},
      {std::regex(R"(initializer '[^']*')"), "an initializer"},
      {std::regex(R"(graph output '[^']*')"), "the graph output"},
  };
  std::string text = reason;
  for (const auto& [pattern, replacement] : kRewrites) text = std::regex_replace(text, pattern, replacement);
  return text;
}

std::string markdown_cell(const std::string& text) {
  return std::regex_replace(text, std::regex(R"(\|)"), "\\|");
}

void write_table(const fs::path& path) {
  std::ofstream out(path);
  out << "| operator | opsets | passed/total | refused | failed |\n|---|---|---|---|---|\n";
  for (const auto& [op, s] : summaries()) {
    std::vector<std::string> refused;
    for (const auto& [reason, count] : s.refusals) refused.push_back(fmt::format("{}× {}", count, reason));
    std::vector<std::string> failed;
    for (const auto& name : s.failed) failed.push_back("`" + name + "`");
    const std::string constants = s.passed_with_constants > 0
                                      ? fmt::format(" ({} with constant parameters)", s.passed_with_constants)
                                      : "";
    out << fmt::format("| {} | {} | {}/{}{} | {} | {} |\n", op, fmt::join(s.opsets, ", "), s.passed, s.total,
                       constants, markdown_cell(fmt::format("{}", fmt::join(refused, "; "))),
                       fmt::format("{}", fmt::join(failed, ", ")));
  }
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

class TableWriter : public ::testing::Environment {
 public:
  void TearDown() override {
    if (const char* path = std::getenv("VAPIPE_CONFORMANCE_TABLE"); path != nullptr && *path != '\0')
      write_table(path);
  }
};

const auto* const kTableWriter = ::testing::AddGlobalTestEnvironment(new TableWriter);

class Op : public ::testing::TestWithParam<std::string> {};

TEST_P(Op, Passes) {
  if (!fs::is_directory(data_dir())) {
    GTEST_SKIP()
        << data_dir() << " not found: the ONNX conformance suite comes from Debian's libonnx-testdata "
        << "(apt-get install libonnx-testdata), or set VAPIPE_ONNX_TESTDATA to an onnx/backend/test/data";
  }
  const std::string& op = GetParam();
  OpSummary& summary = summaries()[op];
  for (const Case& c : claimed_cases()) {
    if (c.ops.count(op) == 0) continue;
    const Outcome& outcome = outcome_of(c);
    summary.opsets.insert(c.opset);
    ++summary.total;
    switch (outcome.verdict) {
      case Verdict::kPass:
        ++summary.passed;
        if (outcome.constant_parameters) ++summary.passed_with_constants;
        std::cout << "[ PASS    ] " << c.name << " (opset " << c.opset
                  << (outcome.constant_parameters ? ", parameters as constants)\n" : ")\n");
        break;
      case Verdict::kRefused:
        ++summary.refusals[condensed(outcome.detail)];
        std::cout << "[ REFUSED ] " << c.name << " (opset " << c.opset << "): " << outcome.detail << "\n";
        break;
      case Verdict::kFail: {
        summary.failed.push_back(c.name);
        const std::string what =
            fmt::format("{} (opset {}, ops {}{}): {}", c.name, c.opset, fmt::join(c.ops, " "),
                        outcome.constant_parameters ? ", parameters as constants" : "", outcome.detail);
        ADD_FAILURE() << what;
        break;
      }
    }
  }
  if (summary.total == 0)
    GTEST_SKIP() << "no test of the suite uses " << op << " with claimed operators only";
  std::cout << op << ": " << summary.passed << " passed, "
            << summary.total - summary.passed - summary.failed.size() << " refused, " << summary.failed.size()
            << " failed of " << summary.total << "\n";
}

INSTANTIATE_TEST_SUITE_P(OnnxConformance, Op, ::testing::ValuesIn(claimed_onnx_ops()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace vapipe
