// The central directory of a ZIP archive, as far as torch.save needs it: stored (method 0)
// entries, ZIP64 end records and ZIP64 extra fields (real checkpoints are several GB).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace m3 {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;      // 0 = stored
  uint64_t offset = 0;      // start of the entry's data in the archive (after the local header)
  uint64_t size = 0;        // bytes of data (stored: compressed == uncompressed)
};

// Reads the end-of-central-directory record (ZIP64 when present), every central directory
// header and each entry's local header (whose name/extra lengths may differ from the central
// ones). Every entry's [offset, offset + size) is checked to lie within the archive.
// Entries with a method other than 0 are listed with their method; callers decide whether
// they need them. Throws Error(kBadModel) "<name>: corrupt zip archive: ..." on any
// inconsistency, Error(kUnsupported) for encrypted entries or multi-disk archives.
// CRC-32 values are not checked: torch.load does not check them either (torch.save can be
// told to skip them, see torch.serialization.set_crc32_options), and a 2 GB checksum would
// only slow conversion down.
std::vector<ZipEntry> read_zip_directory(const uint8_t* data, size_t size, const std::string& name);

}  // namespace m3
