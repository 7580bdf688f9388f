// Line input for encode/score (a file or stdin, read as a stream) and JSON-lines output.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace m3cli {

// JSON with insertion-ordered keys and float numbers (printed as the shortest text that reads
// back as the same float: up to 9 significant digits).
using OutJson = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t,
                                     std::uint64_t, float>;

// Compact JSON text; invalid UTF-8 in strings is replaced (U+FFFD), never an exception.
std::string json_text(const OutJson& j);
// Writes one JSON object per line to stdout.
void write_json_line(const OutJson& j);

class LineReader {
 public:
  // "-" reads stdin. Throws m3::Error(kIo) naming the path if it cannot be opened.
  explicit LineReader(const std::string& path);
  ~LineReader();
  // Next line without its "\n" / "\r\n"; false at end of input.
  bool next(std::string* line);
  int64_t line_number() const { return line_number_; }  // 1-based number of the last line read
  int64_t bytes_read() const { return bytes_; }
  int64_t total_bytes() const { return total_; }        // 0 when unknown (stdin, pipes)

 private:
  FILE* f_ = nullptr;
  char* buf_ = nullptr;
  size_t cap_ = 0;
  bool owned_ = false;
  int64_t line_number_ = 0, bytes_ = 0, total_ = 0;
};

}  // namespace m3cli
