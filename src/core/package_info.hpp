#pragma once
// What `vapipe info` prints about a loaded package: networks, stages, tensors and precisions, as text or as
// one JSON object. In the core library (not the CLI) so the package fuzzer exercises it on every package the
// loader accepts: a loaded package must never crash its printer, whatever its manifest holds.
#include <cstdint>
#include <string>

#include "core/graph.hpp"

namespace vapipe::ir {

struct PackageInfoOptions {
  bool as_json = false;  // one JSON object instead of text lines
  bool layers = false;   // every layer of the first stage with its precision and output dtype
};

// `path` and `file_bytes` only label the report. Throws nothing for a package read_package accepted
// (metadata of any JSON type included): unexpected metadata is printed as it is.
std::string describe_package(const Package& package, const std::string& path, std::uintmax_t file_bytes,
                             PackageInfoOptions options);

}  // namespace vapipe::ir
