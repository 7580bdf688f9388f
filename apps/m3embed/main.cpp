// m3embed: BGE-M3 embeddings on the CPU.
//   m3embed encode  -m MODEL.m3 [--dense] [--sparse] [--colbert] [--tokens] [-i FILE|-] [TEXT ...]
//   m3embed score   -m MODEL.m3 -i PAIRS.tsv [--weights D,S,C]
//   m3embed convert HF_DIR -o MODEL.m3 [--dtype f32]
//   m3embed info    -m MODEL.m3
//   m3embed bench   -m MODEL.m3 --batch B --seq T [--iters N] [--warmup N] | --matmul --M m --K k --N n
// Exit codes: 0 success, 1 usage or input error, 2 bad model file.
#include <CLI/CLI.hpp>

#include "apps/m3embed/commands.h"

namespace {

void add_common(CLI::App* cmd, m3cli::CommonOptions* c) {
  cmd->add_option("-m,--model", c->model, "model file (.m3, made by m3embed convert)")->required();
  cmd->add_option("--threads", c->threads, "worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("-q,--quiet", c->quiet, "no progress on stderr");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"m3embed: BGE-M3 dense, sparse and ColBERT embeddings on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "m3embed 0.1.0");

  m3cli::EncodeArgs enc;
  auto* encode = app.add_subcommand("encode", "embed texts; one JSON object per text on stdout, in input order");
  add_common(encode, &enc.common);
  encode->add_flag("--dense", enc.dense, "dense vector (the default when no output is chosen)");
  encode->add_flag("--sparse", enc.sparse, "lexical weights {\"<token id>\": weight}");
  encode->add_flag("--colbert", enc.colbert, "ColBERT multi-vectors, one row per token after <s>");
  encode->add_flag("--tokens", enc.tokens, "also \"sparse_tokens\": lexical weights keyed by token text");
  encode->add_option("--max-length", enc.max_length, "truncate texts to N tokens (default: the model's maximum)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  encode->add_option("--batch-size", enc.batch_size, "texts per forward pass (default 32)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  encode->add_option("-i,--input", enc.input, "read texts one per line from FILE (- for stdin)");
  encode->add_option("texts", enc.texts, "texts to embed");

  m3cli::ScoreArgs sc;
  auto* score = app.add_subcommand("score", "compute_score for query<TAB>passage lines: dense, sparse, colbert and blends");
  add_common(score, &sc.common);
  score->add_option("-i,--input", sc.input, "pairs file, one query<TAB>passage per line (- for stdin)")->required();
  score->add_option("--weights", sc.weights, "weights D,S,C for dense, sparse, colbert (default 1,1,1)")
      ->delimiter(',')
      ->expected(3);
  score->add_option("--max-query-length", sc.max_query_length, "query truncation in tokens (default 512)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  score->add_option("--max-passage-length", sc.max_passage_length, "passage truncation in tokens (default 8192)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  score->add_option("--batch-size", sc.batch_size, "texts per forward pass (default 32)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));

  m3cli::ConvertArgs conv;
  auto* convert = app.add_subcommand("convert", "convert a Hugging Face BGE-M3 folder into one .m3 file");
  convert->add_option("hf_dir", conv.hf_dir, "folder with config.json, sentencepiece.bpe.model and weights")->required();
  convert->add_option("-o,--output", conv.output, "output .m3 file")->required();
  convert->add_option("--dtype", conv.dtype, "weight type in the file: f32");
  convert->add_flag("-q,--quiet", conv.quiet, "no progress or summary on stderr");

  m3cli::InfoArgs inf;
  auto* info = app.add_subcommand("info", "describe a .m3 model file");
  info->add_option("-m,--model", inf.model, "model file")->required();
  info->add_flag("--json", inf.json, "print one JSON object");

  m3cli::BenchArgs be;
  auto* bench = app.add_subcommand("bench", "time the model on synthetic batches (or one matmul with --matmul)");
  bench->add_option("-m,--model", be.common.model, "model file");
  bench->add_option("--threads", be.common.threads, "worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  bench->add_option("--batch", be.batch, "texts per batch (default 16)")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  bench->add_option("--seq", be.seq, "tokens per text incl. <s> and </s> (default 128)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  bench->add_option("--iters", be.iters, "timed iterations (default 5)")->check(CLI::Range(1, 1 << 20));
  bench->add_option("--warmup", be.warmup, "untimed iterations first (default 1)")->check(CLI::Range(0, 1 << 20));
  bench->add_flag("--matmul", be.matmul, "time one f32 matmul M x K -> N instead");
  bench->add_option("--M", be.m, "matmul rows (default 128)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench->add_option("--K", be.k, "matmul inner size (default 1024)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench->add_option("--N", be.n, "matmul outputs (default 4096)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? m3cli::kExitOk : m3cli::kExitInput;
  }
  if (encode->parsed()) return m3cli::run_encode(enc);
  if (score->parsed()) return m3cli::run_score(sc);
  if (convert->parsed()) return m3cli::run_convert(conv);
  if (info->parsed()) return m3cli::run_info(inf);
  if (bench->parsed()) return m3cli::run_bench(be);
  return m3cli::kExitInput;
}
