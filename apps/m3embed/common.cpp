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

}  // namespace m3cli
