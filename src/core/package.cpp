#include "core/package.hpp"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "core/error.hpp"
#include "core/head_metadata.hpp"
#include "core/json_integers.hpp"
#include "core/mapped_file.hpp"

namespace vapipe::ir {
namespace {

constexpr std::array<char, 8> kMagic{'V', 'A', 'P', 'I', 'P', 'E', 'P', 'K'};
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kBlobAlignment = 64;

// Little-endian on every target we build for (x86-64, aarch64); the header is plain PODs.
struct Header {
  std::array<char, 8> magic;
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint64_t manifest_offset;
  std::uint64_t manifest_size;
  std::uint64_t blob_offset;
  std::uint64_t blob_size;
  std::uint32_t manifest_crc;
  std::uint32_t blob_crc;
  std::uint32_t header_crc;  // over the bytes before this field
  std::uint32_t reserved;
};
static_assert(sizeof(Header) == kHeaderSize);

std::uint32_t crc32_of(const void* data, std::size_t size) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* bytes = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1U << 30U));
    crc = ::crc32(crc, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

std::size_t align_up(std::size_t value) {
  return (value + kBlobAlignment - 1) / kBlobAlignment * kBlobAlignment;
}

// Collects constant blobs, storing identical contents once.
class BlobWriter {
 public:
  nlohmann::json place(const ConstBytes& bytes) {
    const std::uint32_t crc = crc32_of(bytes.data, bytes.size);
    auto& candidates = by_crc_[crc];
    for (std::size_t offset : candidates) {
      if (sizes_[offset] == bytes.size && std::memcmp(blob_.data() + offset, bytes.data, bytes.size) == 0) {
        return {{"offset", offset}, {"size", bytes.size}};
      }
    }
    const std::size_t offset = align_up(blob_.size());
    blob_.resize(offset + bytes.size);
    if (bytes.size != 0) std::memcpy(blob_.data() + offset, bytes.data, bytes.size);
    candidates.push_back(offset);
    sizes_[offset] = bytes.size;
    return {{"offset", offset}, {"size", bytes.size}};
  }
  const std::vector<std::byte>& blob() const { return blob_; }

 private:
  std::vector<std::byte> blob_;
  std::unordered_map<std::uint32_t, std::vector<std::size_t>> by_crc_;
  std::unordered_map<std::size_t, std::size_t> sizes_;
};

}  // namespace

void write_package(const Package& package, const std::string& path) {
  BlobWriter blobs;
  nlohmann::json networks = nlohmann::json::array();
  for (const auto& network : package.networks) {
    nlohmann::json stages = nlohmann::json::array();
    for (const auto& stage : network.stages) {
      nlohmann::json entry =
          graph_to_json(stage.graph, [&](const ConstBytes& bytes) { return blobs.place(bytes); });
      entry["batch"] = stage.batch;
      stages.push_back(std::move(entry));
    }
    networks.push_back({{"name", network.name},
                        {"precision", network.precision},
                        {"dynamic_shape", network.dynamic_shape},
                        {"metadata", network.metadata},
                        {"stages", std::move(stages)}});
  }
  const bool all_f32 = std::all_of(package.networks.begin(), package.networks.end(),
                                   [](const Network& network) { return network.precision == "f32"; });
  const bool integer =
      std::any_of(package.networks.begin(), package.networks.end(), [](const Network& network) {
        return std::any_of(network.stages.begin(), network.stages.end(), [](const Stage& stage) {
          return std::any_of(stage.graph.nodes.begin(), stage.graph.nodes.end(),
                             [](const Node& node) { return node.attrs.value("integer", false); });
        });
      });
  const std::uint32_t version = integer   ? kPackageFormatVersion
                                : all_f32 ? kOldestPackageFormatVersion
                                          : kReducedPrecisionPackageFormatVersion;
  const nlohmann::json manifest = {
      {"format", "vapipe-package"}, {"version", version}, {"networks", std::move(networks)}};
  const std::string manifest_text = manifest.dump();

  Header header{};
  header.magic = kMagic;
  header.version = version;
  header.header_size = kHeaderSize;
  header.manifest_offset = kHeaderSize;
  header.manifest_size = manifest_text.size();
  header.blob_offset = align_up(kHeaderSize + manifest_text.size());
  header.blob_size = blobs.blob().size();
  header.manifest_crc = crc32_of(manifest_text.data(), manifest_text.size());
  header.blob_crc = crc32_of(blobs.blob().data(), blobs.blob().size());
  header.header_crc = crc32_of(&header, offsetof(Header, header_crc));

  // A name only this writer uses (pid and a per-process counter): two processes writing the same package
  // (two `vapipe run` compiling one .onnx into the cache) must not write into one temporary file. The
  // rename is atomic: a reader sees the old file or the whole new one, and the last writer wins.
  static std::atomic<unsigned> writers{0};
  const std::string temporary = fmt::format("{}.{}-{}.tmp", path, static_cast<long>(::getpid()), writers++);
  struct RemoveUnlessRenamed {
    const std::string& file;
    bool renamed = false;
    ~RemoveUnlessRenamed() {
      std::error_code ignored;
      if (!renamed) std::filesystem::remove(file, ignored);
    }
  } cleanup{temporary};
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot open for writing", temporary);
    out.write(reinterpret_cast<const char*>(&header), sizeof(header));
    out.write(manifest_text.data(), static_cast<std::streamsize>(manifest_text.size()));
    const std::vector<char> padding(header.blob_offset - kHeaderSize - manifest_text.size(), 0);
    out.write(padding.data(), static_cast<std::streamsize>(padding.size()));
    out.write(reinterpret_cast<const char*>(blobs.blob().data()),
              static_cast<std::streamsize>(blobs.blob().size()));
    if (!out.flush()) fail("{}: write failed (disk full?)", temporary);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) fail("{}: cannot move into place: {}", path, error.message());
  cleanup.renamed = true;
}

Package read_package(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (!error && size > kMaxPackageBytes) {
    fail("{}: {} bytes is more than a model package may have ({} bytes)", path, size, kMaxPackageBytes);
  }
  auto file = MappedFile::open(path);
  return read_package(file->bytes(), file, path);
}

Package read_package(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                     const std::string& path) {
  if (bytes.size() > kMaxPackageBytes) {
    fail("{}: {} bytes is more than a model package may have ({} bytes)", path, bytes.size(),
         kMaxPackageBytes);
  }
  if (bytes.size() < kHeaderSize) fail("{}: not a vapipe package (only {} bytes)", path, bytes.size());
  Header header{};
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (header.magic != kMagic) fail("{}: not a vapipe package (bad magic)", path);
  if (header.header_crc != crc32_of(&header, offsetof(Header, header_crc)))
    fail("{}: header checksum mismatch", path);
  if (header.version < kOldestPackageFormatVersion || header.version > kPackageFormatVersion) {
    fail("{}: package format version {} is not supported (this build reads versions {} to {})", path,
         header.version, kOldestPackageFormatVersion, kPackageFormatVersion);
  }
  // Each field is checked against the size limit first, so the sums below cannot wrap around.
  if (header.manifest_offset > kMaxPackageBytes || header.manifest_size > kMaxPackageBytes ||
      header.blob_offset > kMaxPackageBytes || header.blob_size > kMaxPackageBytes ||
      header.manifest_offset < kHeaderSize) {
    fail("{}: corrupt header (section offsets or sizes out of range)", path);
  }
  const std::uint64_t expected_size = header.blob_offset + header.blob_size;
  if (header.manifest_offset + header.manifest_size > header.blob_offset) {
    fail("{}: corrupt header (sections overlap)", path);
  }
  if (bytes.size() < expected_size) {
    fail("{}: truncated: {} bytes, the header announces {}", path, bytes.size(), expected_size);
  }
  const auto* manifest_data = bytes.data() + header.manifest_offset;
  if (crc32_of(manifest_data, header.manifest_size) != header.manifest_crc) {
    fail("{}: manifest checksum mismatch (file corrupt)", path);
  }
  const std::byte* blob = bytes.data() + header.blob_offset;
  if (crc32_of(blob, header.blob_size) != header.blob_crc)
    fail("{}: weights checksum mismatch (file corrupt)", path);

  Package package;
  try {
    const auto manifest =
        nlohmann::json::parse(reinterpret_cast<const char*>(manifest_data),
                              reinterpret_cast<const char*>(manifest_data) + header.manifest_size);
    auto find_data = [&](const nlohmann::json& where) {
      const auto offset = json_integer<std::uint64_t>(where.at("offset"), "constant offset");
      const auto size = json_integer<std::uint64_t>(where.at("size"), "constant size");
      if (offset > header.blob_size || size > header.blob_size - offset || offset % kBlobAlignment != 0) {
        fail("constant at offset {} size {} lies outside the weights section", offset, size);
      }
      return ConstBytes{blob + offset, size, owner};
    };
    for (const auto& entry : manifest.at("networks")) {
      Network network;
      network.name = entry.at("name").get<std::string>();
      network.precision = entry.at("precision").get<std::string>();
      network.dynamic_shape = entry.at("dynamic_shape").get<bool>();
      network.metadata = entry.at("metadata");
      // Every reader of a network takes its metadata as an object and its layers from its first stage.
      if (!network.metadata.is_object()) fail("network '{}': metadata is not a JSON object", network.name);
      check_head_metadata(network.name, network.metadata);
      for (const auto& stage_json : entry.at("stages")) {
        Stage stage;
        stage.batch =
            json_integer<std::int64_t>(stage_json.at("batch"), "network '" + network.name + "': stage batch");
        stage.graph = graph_from_json(stage_json, find_data);
        network.stages.push_back(std::move(stage));
      }
      if (network.stages.empty()) fail("network '{}' has no stages (\"stages\": [])", network.name);
      package.networks.push_back(std::move(network));
    }
  } catch (const nlohmann::json::exception& error) {
    fail("{}: malformed manifest: {}", path, error.what());
  } catch (const Error& error) {
    fail("{}: {}", path, error.what());
  }
  return package;
}

}  // namespace vapipe::ir
