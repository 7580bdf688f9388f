// A minimal, non-executing pickle reader: enough of protocols 2-5 to read the data.pkl that
// torch.save writes. Nothing is imported or called: GLOBAL pushes a name, and REDUCE /
// BINPERSID / NEWOBJ are handed to callbacks that build whatever the caller understands
// (storages, tensors) or an opaque object. Malformed input (stack underflow, bad memo index,
// truncation, unknown opcode) throws Error(kBadModel) "<name>: corrupt pickle at byte N: ...";
// it never crashes and always terminates (every opcode consumes at least one byte).
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace m3 {

struct PickleValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict, kGlobal, kObject, kExternal };
  Kind kind = Kind::kNone;
  int64_t i = 0;          // kBool, kInt; kExternal: caller-defined index
  double f = 0;           // kFloat
  std::string s;          // kString/kBytes: the text; kGlobal/kObject: "module.name" of the callable
  std::vector<PickleValue*> items;                            // kTuple, kList
  std::vector<std::pair<PickleValue*, PickleValue*>> entries;  // kDict, in insertion order
  int external_kind = 0;  // kExternal: caller-defined tag

  bool is_string(const char* text) const { return kind == Kind::kString && s == text; }
  // A dict entry with a string key, or nullptr.
  const PickleValue* get(const std::string& key) const;
};

class PickleReader {
 public:
  // Builds the result of calling `callable` (a kGlobal, or anything else) with `args` (a tuple).
  using ReduceFn = std::function<PickleValue*(PickleReader&, const PickleValue& callable, const PickleValue& args)>;
  // Resolves a persistent id.
  using PersistentFn = std::function<PickleValue*(PickleReader&, const PickleValue& pid)>;

  PickleReader(const uint8_t* data, size_t size, std::string name) : d_(data), n_(size), name_(std::move(name)) {}

  // Runs to STOP and returns the top of the stack. Values live as long as the reader.
  const PickleValue& run(const ReduceFn& reduce, const PersistentFn& persistent);

  PickleValue* make(PickleValue::Kind kind);
  // Throws Error(kBadModel) "<name>: corrupt pickle at byte N: <what>" (N = current opcode).
  [[noreturn]] void corrupt(const std::string& what) const;

 private:
  bool step(const ReduceFn& reduce, const PersistentFn& persistent);  // false at STOP
  void need(size_t bytes) const;
  uint64_t read_le(size_t bytes);
  std::string read_bytes(uint64_t len);
  PickleValue* pop();
  PickleValue* top();
  std::vector<PickleValue*> pop_to_mark();
  void push(PickleValue* v);
  void memo_put(uint64_t index);
  PickleValue* memo_get(uint64_t index);
  void set_items(PickleValue* dict, const std::vector<PickleValue*>& kv);
  void append_items(PickleValue* list, const std::vector<PickleValue*>& items);

  const uint8_t* d_;
  size_t n_;
  std::string name_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::deque<PickleValue> arena_;  // stable addresses; cycles are harmless
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;      // stack heights at MARK
  std::unordered_map<uint64_t, PickleValue*> memo_;  // a map: indices come from the file
};

}  // namespace m3
