#include "apps/m3embed/common.h"

#include <cstdio>

#include "core/error.h"
#include "quant/linear.h"

namespace m3cli {

void print_error(const std::string& message) { std::fprintf(stderr, "m3embed: %s\n", message.c_str()); }

std::shared_ptr<const m3::Model> load_model(const CommonOptions& common) {
  m3::set_num_threads(common.threads);
  try {
    return m3::Model::load(common.model);
  } catch (const std::exception& e) {
    print_error(std::string("cannot load model: ") + e.what());
    return nullptr;
  }
}

bool parse_weights_dtype(const std::string& name, m3::DType* out) {
  if (name == "int8" || name == "i8") {
    *out = m3::DType::kI8;
  } else if (name == "bf16") {
    *out = m3::DType::kBF16;
  } else if (name == "f32") {
    *out = m3::DType::kF32;
  } else {
    return false;
  }
  return true;
}

}  // namespace m3cli
