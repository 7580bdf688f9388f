// example_cpp MODEL.m3 TEXT...: the C++ wrapper (<m3embed/m3embed.hpp>): encodes the texts on
// two threads at once, each with its own Context on one shared Model, and prints the dense
// similarity of every pair and the heaviest lexical weight of each text.
#include <cstdio>
#include <m3embed/m3embed.hpp>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.m3 TEXT...\n", argv[0]);
    return 2;
  }
  try {
    const m3embed::Model model = m3embed::Model::load(argv[1]);
    const m3_model_info info = model.info();
    const std::vector<std::string> texts(argv + 2, argv + argc);
    m3_encode_params params = m3_encode_default_params();
    params.sparse = info.has_sparse;

    // Two threads, one shared model, one context each.
    m3embed::BatchResult results[2];
    std::string errors[2];
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        try {
          m3embed::Context ctx(model);
          results[t] = ctx.encode(texts, params);
        } catch (const m3embed::Error& e) {
          errors[t] = e.what();
        }
      });
    }
    for (std::thread& th : threads) th.join();
    for (const std::string& e : errors) {
      if (!e.empty()) throw m3embed::Error(M3_ERR_INTERNAL, e);
    }
    const m3embed::BatchResult& r = results[0];
    for (size_t i = 0; i < r.size(); ++i) {
      const bool same = r.dense(i).to_vector() == results[1].dense(i).to_vector();
      std::printf("[%zu] %zu tokens, dense[%zu], both threads agree: %s\n", i, r.tokens(i).size(), r.dense(i).size(),
                  same ? "yes" : "NO");
      if (params.sparse) {
        const m3embed::Sparse s = r.sparse(i);
        size_t best = 0;
        for (size_t k = 1; k < s.size(); ++k) best = s.weights[k] > s.weights[best] ? k : best;
        if (s.size() > 0)
          std::printf("    heaviest: %s %.4f\n", model.token_text(s.ids[best]).c_str(), s.weights[best]);
      }
      for (size_t j = i + 1; j < r.size(); ++j) {
        std::printf("    dense score with [%zu]: %.4f\n", j, m3embed::dense_score(r.dense(i), r.dense(j)));
      }
    }
    return 0;
  } catch (const m3embed::Error& e) {
    std::fprintf(stderr, "example_cpp: %s\n", e.what());
    return 1;
  }
}
