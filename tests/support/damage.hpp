#pragma once
// Damaged input files for fault tests: bytes read and written whole, and seeded damage to an Annex-B
// H.264/H.265 stream (shared by the pipeline fault tests and the `vapipe run` ones).
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

namespace vapipe::test {

inline std::vector<char> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& file, const std::vector<char>& bytes) {
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Seeded damage to an Annex-B stream, past the first NAL units (parameter sets, first key frame): random
// byte flips in 1 % of the bytes, every 7th NAL unit cut to half its length, every 11th one left out.
inline std::vector<char> damaged(std::vector<char> bytes, unsigned seed) {
  std::mt19937 random(seed);
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i + 3 < bytes.size(); ++i)
    if (bytes[i] == 0 && bytes[i + 1] == 0 && bytes[i + 2] == 1) starts.push_back(i);
  std::vector<char> out;
  out.reserve(bytes.size());
  for (std::size_t n = 0; n < starts.size(); ++n) {
    const std::size_t begin = starts[n];
    const std::size_t end = n + 1 < starts.size() ? starts[n + 1] : bytes.size();
    std::size_t length = end - begin;
    if (n > 4 && n % 11 == 0) continue;                                      // NAL unit lost
    if (n > 4 && n % 7 == 0) length = std::max<std::size_t>(4, length / 2);  // cut NAL unit
    for (std::size_t i = begin; i < begin + length; ++i) {
      char byte = bytes[i];
      if (n > 4 && i > begin + 4 && random() % 100 == 0) byte = static_cast<char>(random() & 0xff);
      out.push_back(byte);
    }
  }
  return out;
}

}  // namespace vapipe::test
