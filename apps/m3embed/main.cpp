// m3embed: BGE-M3 embeddings on the CPU.
//   m3embed encode  -m MODEL.m3 [--dense] [--sparse] [--colbert] [--tokens] [--mcls N] [--long window]
//                   [-i FILE|-] [-d DOCUMENT ...] [TEXT ...]
//   m3embed score   -m MODEL.m3 -i PAIRS.tsv [--weights D,S,C]
//   m3embed convert HF_DIR -o MODEL.m3 [--dtype int8|bf16|f32] [--smooth-alpha A] [--smooth all|ln|none]
//   m3embed quantize F32.m3 -o MODEL.m3 [--dtype int8|bf16] [--calibration FILE]
//   m3embed eval    -m QUANTIZED.m3 --reference F32.m3 [-i TEXTS] [--json]
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

void add_quant_options(CLI::App* cmd, m3cli::QuantChoice* q, const char* dtype_help) {
  cmd->add_option("--dtype", q->dtype, dtype_help);
  cmd->add_option("--smooth-alpha", q->smooth_alpha, "int8: SmoothQuant migration strength, 0..1 (default 0.5)")
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--smooth", q->smooth, "int8: matmul inputs to smooth: all (default), ln, none")
      ->check(CLI::IsMember({"all", "ln", "none"}));
  cmd->add_option("--keep-layers", q->keep_layers, "int8: the first N layers' matmuls stay bf16 (more accurate, a bit slower)")
      ->check(CLI::Range(0, 1 << 16));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"m3embed: BGE-M3 dense, sparse and ColBERT embeddings on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "m3embed 0.2.0");

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
  encode->add_option("--max-batch-tokens", enc.max_batch_tokens,
                     "tokens per forward pass: texts are sorted by length and grouped under it (default 16384)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  encode->add_option("--mcls", enc.mcls,
                     "MCLS: insert <s> every N tokens; dense = mean of all <s> states (the paper uses 256; default 0 = off)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  encode->add_option("--long", enc.long_mode,
                     "texts over --max-length: truncate (default) or window (overlapping windows, combined)")
      ->check(CLI::IsMember({"truncate", "window"}));
  encode->add_option("--overlap", enc.overlap, "--long window: tokens shared by consecutive windows (default 256)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  encode->add_option("-i,--input", enc.input, "read texts one per line from FILE (- for stdin)");
  encode->add_option("-d,--document", enc.documents,
                     "a file that is one text (any size, read as a stream; repeatable; - for stdin)");
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
  add_quant_options(convert, &conv.quant, "weights in the file: int8 (default, smallest and fastest), bf16, f32");
  convert->add_flag("-q,--quiet", conv.quiet, "no progress or summary on stderr");

  m3cli::QuantizeArgs qa;
  auto* quantize = app.add_subcommand("quantize", "make an int8 or bf16 .m3 from an f32 .m3");
  quantize->add_option("input", qa.input, "f32 model file")->required();
  quantize->add_option("-o,--output", qa.output, "output .m3 file")->required();
  add_quant_options(quantize, &qa.quant, "int8 (default) or bf16");
  quantize->add_option("--calibration", qa.calibration, "calibration texts, one per line (default: built-in multilingual set)");
  quantize->add_flag("-q,--quiet", qa.quiet, "no progress or summary on stderr");

  m3cli::EvalArgs ev;
  auto* eval = app.add_subcommand("eval", "quality of a quantized model against its f32 twin");
  add_common(eval, &ev.common);
  eval->add_option("-r,--reference", ev.reference, "the f32 model file to compare with")->required();
  eval->add_option("-i,--input", ev.input, "texts, one per line (default: built-in multilingual evaluation set)");
  eval->add_option("--max-length", ev.max_length, "tokens per text (default 512)")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  eval->add_flag("--json", ev.json, "print one JSON object");

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
  bench->add_flag("--profile", be.profile, "also print the time per phase of the forward pass");
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
  if (quantize->parsed()) return m3cli::run_quantize(qa);
  if (eval->parsed()) return m3cli::run_eval(ev);
  if (info->parsed()) return m3cli::run_info(inf);
  if (bench->parsed()) return m3cli::run_bench(be);
  return m3cli::kExitInput;
}
