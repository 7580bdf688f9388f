// Pieces shared by the subcommands.
#pragma once
#include <memory>
#include <string>

#include "apps/m3embed/commands.h"
#include "core/model.h"

namespace m3cli {

// Prints "m3embed: <message>" on stderr.
void print_error(const std::string& message);
// Sets threads and loads the model; on failure prints why and returns nullptr
// (the caller exits with kExitModel).
std::shared_ptr<const m3::Model> load_model(const CommonOptions& common);

}  // namespace m3cli
