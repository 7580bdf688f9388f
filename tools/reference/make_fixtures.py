#!/usr/bin/python3
"""Writes the synthetic Hugging Face fixture folders under tests/fixtures/ and their
reference outputs (float64 PyTorch reference, m3ref.py).

    /usr/bin/python3 tools/reference/make_fixtures.py [--out tests/fixtures] [--corpus tools/reference/corpus.txt]

Fixtures (random weights, real file formats):
  tiny-bin    H=64, 4 heads, 2 layers, FFN 128; pytorch_model.bin fp32 (OrderedDict); fp16 heads
  tiny-st     H=45, 3 heads, 3 layers, FFN 96; model.safetensors F16, names `roberta.`; fp16 heads
  tiny-bf16   like tiny-bin, other seed; pytorch_model.bin bf16 (plain dict); fp16 heads
  tiny-dense  H=32, 2 heads, 1 layer, FFN 64; model.safetensors F32; no heads (dense only)
  small-outlier H=256, 4 heads, 4 layers, FFN 1024; model.safetensors F16; fp16 heads; for int8 accuracy (quantized vs f32);
              outliers="offset": outlier channels ~30..80 from LayerNorm biases (gains ~2), removed again by
              each sublayer's output bias and weighted by RMS in Q/K/V/FFN-in (well conditioned in fp16/bf16)
  long        H=64, 4 heads, 2 layers, FFN 128, 2050 positions (sequences up to 2048 tokens); model.safetensors
              F32; fp16 heads; reference.json adds "long_cases": M3Reference.encode_long on ~1500- and
              ~5000-token multilingual texts (MCLS intervals 256/100/128 and one dividing the content, truncation
              at 2048 and 300, sliding windows of 512 / 2048 tokens with overlap 64 / 256, one-window text)

long_cases semantics (m3ref.py): content = the text's piece ids without <s>/</s>. MCLS interval N:
[<s>] c[0:N] [<s>] c[N:2N] ... [</s>] (no <s> without content after it), truncated to the longest
content prefix m with m + max(1, ceil(m/N)) + 1 <= max_length, ordinary positions; dense = normalised
mean of the last hidden states of all <s>, ColBERT without the inserted <s> rows. Windows: L = the
most content that fits max_length after framing, starts 0, S, 2S, ... (S = L - overlap) up to the
first window reaching the end; dense = normalised mean of the windows' dense vectors, sparse = per
id the max over windows, ColBERT = the windows' rows concatenated. Each case stores its framed
"windows" (one for truncate), dense / sparse {"id": w} (complete), "colbert_rows" (the row count)
and "colbert_sample": [row_index, row] pairs for row 0, the last row, every 23rd row (index % 23
== 0) and each window's first and last row (the full rows would make the file ~10 MB). The
float32 check runs on the full outputs.

Weights are drawn with fixed seeds and scaled with a data-dependent recipe (calibrated on
corpus sentences, layer by layer) so that the models behave like trained encoders: attention
is peaked, dense vectors of different texts are far apart, about 40% of the sparse weights are
positive, and 3 fixed hidden channels carry LayerNorm gains of 8..20 (large activations, as
trained XLM-R has). The sparse bias is moved, deterministically, until no token of any
reference text has a sparse pre-activation within 1e-3 of zero (long cases: no id's largest
pre-activation within 1e-4), and the whole reference is
recomputed in float32 and checked against the parity budgets with a 10x margin.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import textwrap
import unicodedata
import zipfile
from collections import OrderedDict

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import m3ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
SPM_MODELS = {
    # name: (vocab_size, character_coverage). 0.98 is the lowest coverage SentencePiece
    # accepts; with CJK in a ~9k-line corpus a higher one needs more pieces than the vocab.
    "A": (1500, 0.98),
    "B": (1100, 0.98),
}

FIXTURES = [
    dict(name="tiny-bin", spm="A", H=64, heads=4, layers=2, ffn=128, positions=130, seed=1001,
         fmt="bin", dtype=torch.float32, container="ordered", prefix="", has_heads=True),
    dict(name="tiny-st", spm="B", H=45, heads=3, layers=3, ffn=96, positions=130, seed=2002,
         fmt="st", dtype=torch.float16, prefix="roberta.", has_heads=True),
    dict(name="tiny-bf16", spm="A", H=64, heads=4, layers=2, ffn=128, positions=130, seed=3003,
         fmt="bin", dtype=torch.bfloat16, container="dict", prefix="", has_heads=True),
    dict(name="tiny-dense", spm="A", H=32, heads=2, layers=1, ffn=64, positions=130, seed=4006,
         fmt="st", dtype=torch.float32, prefix="", has_heads=False),
    dict(name="small-outlier", spm="A", H=256, heads=4, layers=4, ffn=1024, positions=130, seed=4006,
         fmt="st", dtype=torch.float16, prefix="", has_heads=True, outliers="offset"),
    dict(name="long", spm="A", H=64, heads=4, layers=2, ffn=128, positions=2050, seed=5005,
         fmt="st", dtype=torch.float32, prefix="", has_heads=True, long_cases=True),
]

# Calibration targets of the weight recipe.
ATTN_SCORE_STD = 2.5      # std of QK^T/sqrt(d): peaked, not uniform attention
SUBLAYER_OUT_STD = 1.0    # std of attention-output / FFN-output before the residual add
FFN_PRE_STD = 1.5         # std of the FFN pre-activation (GELU well into its nonlinearity)
SPARSE_PRE_STD = 0.25     # std of the sparse_linear output (real lexical weights ~0.05..0.35)
SPARSE_POSITIVE = 0.40    # fraction of calibration tokens with a positive sparse weight
OUTLIER_GAINS = (11.0, 16.0, 8.5)   # LayerNorm gains of the outlier channels
FINAL_OUTLIER_GAIN = 0.05 # the last LayerNorm: outliers present but not dominating the CLS
SPARSE_MARGIN = 1e-3
# Long cases: an id's sparse weight is the max over its occurrences (and windows), so only that
# max decides whether the id appears; with ~10k tokens a 1e-3 band around zero cannot be kept
# empty, so these maxima keep the sparse budget (1e-4) from zero instead.
LONG_SPARSE_MARGIN = 1e-4
OUTLIER_KEEP = 0.02       # share of the outlier channels' residual the last FFN leaves in place
# outliers="offset" fixtures: the outlier channels are mostly a per-channel offset set by the
# LayerNorm bias (sign and size per channel), with a moderate gain on top, and every sublayer's
# output bias removes the offset of the LayerNorm output it is added to (see Recipe.ln).
OFFSET_BIASES = (38.0, -52.0, 30.0)  # LayerNorm biases of the outlier channels
OFFSET_GAINS = (1.6, 2.0, 1.4)       # LayerNorm gains of the outlier channels

# Budgets of tests/test_parity.cpp; the float32 re-computation must meet them 10x tighter.
BUDGET = dict(dense_cos=1 - 1e-5, dense_abs=1e-4, sparse_abs=1e-4, colbert_cos=1 - 1e-4, score_abs=1e-4)
MARGIN = 10.0

MODEL_CARD_QUERIES = ["What is BGE M3?", "Defination of BM25"]
MODEL_CARD_PASSAGES = [
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "BM25 is a bag-of-words retrieval function that ranks a set of documents based on the query terms appearing in each document",
]

SCRIPTS = OrderedDict([
    ("zh", ("CJK UNIFIED",)), ("ja", ("HIRAGANA", "KATAKANA")), ("ko", ("HANGUL",)),
    ("ar", ("ARABIC",)), ("he", ("HEBREW",)), ("ru", ("CYRILLIC",)), ("el", ("GREEK",)),
    ("hi", ("DEVANAGARI",)), ("th", ("THAI",)),
])


def outlier_channels(H):
    return [H // 7, H // 2 + 1, H - 3]


# --------------------------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------------------------
def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def script_share(text, names):
    letters = [ch for ch in text if unicodedata.category(ch).startswith("L")]
    if not letters:
        return 0.0
    hit = sum(1 for ch in letters if any(n in unicodedata.name(ch, "") for n in names))
    return hit / len(letters)


def pick_multilingual(corpus):
    """One sentence per script: the first corpus line of 15..40 chars mostly in that script."""
    out = OrderedDict()
    for lang, names in SCRIPTS.items():
        for line in corpus:
            if 15 <= len(line) <= 40 and script_share(line, names) >= (0.5 if lang == "ja" else 0.8):
                if lang == "zh" and script_share(line, ("HIRAGANA", "KATAKANA")) > 0:
                    continue
                out[lang] = line
                break
    return out


def long_text(corpus, start, min_chars):
    parts = []
    i = start
    while sum(len(p) + 1 for p in parts) < min_chars:
        parts.append(corpus[i])
        i += 1
    return " ".join(parts)


def build_texts(corpus):
    ml = pick_multilingual(corpus)
    long_en = long_text(corpus, 3, 900)       # English block of the corpus
    long_mixed = long_text(corpus, 2300, 500)  # another part of the corpus
    cases = []

    def add(text, max_length):
        cases.append({"text": text, "max_length": max_length})

    for t in MODEL_CARD_QUERIES + MODEL_CARD_PASSAGES:
        add(t, 128)
    add("", 128)
    add("   \t ", 128)
    add(long_en, 128)
    add(long_mixed, 16)
    add(MODEL_CARD_PASSAGES[1], 16)
    for lang, t in ml.items():
        add(t, 128)
    add(ml["ru"] + " " + ml["zh"], 16)
    add("the the the the the the the the the the the the", 128)
    add("BM25 BM25 BM25", 128)
    add("Fill the <mask> here, then </s> and more<mask>text", 128)
    add("I \u2764\ufe0f \U0001F984 unicorns \u2603 \U0001D11E \ua66e \U00013000!", 128)

    tok_texts = [
        "", " ", "   \t ", "\n\n", "x", "Hello world!", "  leading and trailing spaces  ",
        "multiple    internal     spaces", "What is the capital of France?",
        "The quick brown fox jumps over the lazy dog.",
        "<s> </s> <pad> <unk> <mask> fake special tokens", "a<mask>b", "<<s>>", "</s", "<mask",
        "<s><s></s>", "<unk>", "< s >", "x</s>y<pad>z", "<mask><mask> <mask>",
        "Straße, ﬁle, ①, Ｆｕｌｌｗｉｄｔｈ, café vs cafe\u0301", "zero\u200bwidth", "tab\tand\nnewline",
        "I \u2764\ufe0f \U0001F984 unicorns \u2603 \U0001D11E \ua66e \U00013000!",
        "mixed 中文 English 日本語 한국어 in one sentence, 混合語言測試。",
    ] + list(ml.values())
    tokenizer_cases = [{"text": t} for t in tok_texts]
    for t, m in [("Hello world!", 2), ("Hello world!", 3), ("Hello world!", 5), (MODEL_CARD_PASSAGES[1], 5),
                 ("", 2), ("<mask> <mask> <mask>", 3), (long_en, 16), (long_en, 128)]:
        tokenizer_cases.append({"text": t, "max_length": m})

    scores = {
        "queries": MODEL_CARD_QUERIES + [ml["ru"], "BM25 retrieval"],
        "passages": MODEL_CARD_PASSAGES + [long_en, ml["zh"] + " " + ml["ru"]],
        "weights": [0.4, 0.2, 0.4],
        "max_query_length": 32,
        "max_passage_length": 64,
    }
    scores["pairs"] = [[q, p] for q in range(len(scores["queries"])) for p in range(len(scores["passages"]))]
    return cases, tokenizer_cases, scores


def mixed_text(corpus, tok, starts, min_tokens, run=8):
    """Corpus lines joined with a space: `run` consecutive lines from each start in turn (one
    language block each; the corpus has 220 lines per language), until the text has at least
    min_tokens content tokens. One start: simply consecutive lines."""
    parts, offset = [], 0
    while True:
        for st in starts:
            for line in corpus[st + offset: st + offset + run]:
                parts.append(line)
                text = " ".join(parts)
                if len(tok.encode_pieces(text)) >= min_tokens:
                    return text
        offset += run


def build_long_cases(corpus, tok):
    """Inputs of the `long` fixture's long_cases (MCLS and sliding windows, m3ref.encode_long)."""
    # en, fr, ru, el, hi, ja blocks: ~1500 tokens; es, pl, tr, uk, ar, th, ko, zh: ~5000 tokens
    t1500 = mixed_text(corpus, tok, [3, 440, 4840, 5720, 6600, 7920], 1500)
    t5000 = mixed_text(corpus, tok, [660, 2200, 3300, 5060, 6160, 7260, 8140, 8360], 5000)
    t40 = mixed_text(corpus, tok, [1104], 40)   # Portuguese, 48 tokens
    t30 = mixed_text(corpus, tok, [2873], 30)   # Hungarian, 34 tokens
    # mcls_exact: an interval that divides the content length (no <s> before the </s>)
    n40 = len(tok.encode_pieces(t40))
    d = next((d for d in (4, 3, 2) if n40 % d == 0), None)
    assert d is not None, f"mcls_exact: {n40} content tokens, pick another text"
    out = []
    for name, text, ml, mcls, long, overlap in [
            ("plain_1500", t1500, 2048, 0, "truncate", 0),       # attention over > 512 tokens
            ("mcls256_1500", t1500, 2048, 256, "truncate", 0),
            ("mcls100_cut", t1500, 300, 100, "truncate", 0),     # truncation with MCLS
            ("mcls_exact", t40, 2048, n40 // d, "truncate", 0),  # content = d whole groups
            ("window_512", t1500, 512, 0, "window", 64),
            ("window_512_mcls", t1500, 512, 128, "window", 64),
            ("window_short", t30, 512, 0, "window", 64),         # one window = truncate
            ("window_2048_long", t5000, 2048, 0, "window", 256)]:
        out.append(OrderedDict(name=name, text=text, max_length=ml, mcls=mcls, long=long, overlap=overlap))
    return out


# --------------------------------------------------------------------------------------------
# SentencePiece
# --------------------------------------------------------------------------------------------
def train_spm(corpus_path, vocab_size, coverage, out_path):
    """Trains in a temporary directory with relative paths: the trainer spec stored inside the
    model names its input and prefix, so absolute paths would make the bytes machine-dependent."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(corpus_path, os.path.join(tmp, "corpus.txt"))
        os.chdir(tmp)
        try:
            spm.SentencePieceTrainer.train(
                input="corpus.txt", model_prefix="spm", vocab_size=vocab_size, model_type="unigram",
                normalization_rule_name="nmt_nfkc", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                character_coverage=coverage, num_threads=1, input_sentence_size=0,
                shuffle_input_sentence=False, minloglevel=2)
        finally:
            os.chdir(cwd)
        shutil.copyfile(os.path.join(tmp, "spm.model"), out_path)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------
class Recipe:
    """Draws and calibrates the weights of one fixture (float64, before storage rounding)."""

    def __init__(self, fx, vocab, calib_ids):
        self.fx = fx
        self.H, self.nh, self.L, self.I = fx["H"], fx["heads"], fx["layers"], fx["ffn"]
        self.V, self.P = vocab, fx["positions"]
        self.rng = np.random.default_rng(fx["seed"])
        self.calib = calib_ids
        self.outl = outlier_channels(self.H)
        self.w = OrderedDict()

    def randn(self, *shape):
        return torch.from_numpy(self.rng.standard_normal(shape))

    def rand(self, *shape):
        return torch.from_numpy(self.rng.random(shape))

    def ln(self, name, final=False):
        g = 1.0 + 0.1 * (2 * self.rand(self.H) - 1)
        offset = self.fx.get("outliers", "gain") == "offset"
        for c, gain in zip(self.outl, OFFSET_GAINS if offset else OUTLIER_GAINS):
            g[c] = (FINAL_OUTLIER_GAIN if final else gain) * (1 + 0.05 * float(self.rand(1)))
        b = (0.005 if final else 0.05) * self.randn(self.H)
        if offset and not final:
            # Outliers as offsets: LayerNorm output ~ +-(30..55) in these channels for every
            # token, with a token-dependent part of gain ~2 on top. A large gain instead would
            # grow layer by layer (each post-LN residual feeds the next LayerNorm) until the
            # outlier channels hold all of a token's variance and the other channels ~0.1.
            for c, bias in zip(self.outl, OFFSET_BIASES):
                b[c] = bias * (1 + 0.05 * float(self.rand(1)))
        self.w[name + ".weight"], self.w[name + ".bias"] = g, b

    def remove_offset(self, name, os_, ln_name):
        """outliers="offset": the sublayer `name` (outputs os_, added to the output of LayerNorm
        ln_name) takes that LayerNorm's outlier offsets back out with its bias, so the next
        LayerNorm's input has outlier channels of ordinary size (a bias, exact in any precision:
        no large token-dependent values cancel in a matmul)."""
        if self.fx.get("outliers", "gain") != "offset":
            return os_
        d = torch.zeros(self.H, dtype=torch.float64)
        d[self.outl] = -self.w[ln_name + ".bias"][self.outl]
        self.w[name + ".bias"] += d
        return [o + d for o in os_]

    def apply_ln(self, xs, name):
        return [F.layer_norm(x, (self.H,), self.w[name + ".weight"], self.w[name + ".bias"], 1e-5) for x in xs]

    @staticmethod
    def chan_std(xs):
        return torch.cat(xs).std(dim=0).clamp(min=1e-3)

    def linear(self, name, out_dim, xs, target_std, bias_std, whiten=True):
        """Random Linear on inputs xs, scaled so the output (before bias) has std target_std."""
        w = self.randn(out_dim, xs[0].shape[1]) / math.sqrt(xs[0].shape[1])
        if whiten and self.fx.get("outliers", "gain") == "offset":
            # per-channel RMS, offset included: the outlier channels get small weights (as in
            # trained models, which learn to ignore them), so no matmul output is dominated by
            # the outliers' token-independent part
            w = w / torch.cat(xs).pow(2).mean(0).sqrt().clamp(min=1e-3)[None, :]
        elif whiten:
            w = w / self.chan_std(xs)[None, :]
        y = torch.cat(xs) @ w.T
        w = w * (target_std / float(y.std()))
        self.w[name + ".weight"] = w
        self.w[name + ".bias"] = bias_std * self.randn(out_dim)
        return [x @ w.T + self.w[name + ".bias"] for x in xs]

    def cancel_outliers(self, pre, xs):
        """The last FFN removes (1 - OUTLIER_KEEP) of the outlier channels from the residual,
        token by token, with one intermediate neuron per channel run in GELU's linear range
        (u = alpha * x_c + beta, beta >= 4 |alpha x_c|): u ~ gelu(u). Otherwise the huge
        outlier values would dominate the last LayerNorm's mean and variance and give every
        token's final state one shared direction of variation. Returns the new FFN outputs."""
        W1, b1 = self.w[pre + "intermediate.dense.weight"], self.w[pre + "intermediate.dense.bias"]
        W2, b2 = self.w[pre + "output.dense.weight"], self.w[pre + "output.dense.bias"]
        allx = torch.cat(xs)
        for n, c in enumerate(self.outl):
            j = self.I - 1 - n
            alpha = 1.5 / float(allx[:, c].abs().max())
            beta = 6.0
            W1[j] = 0
            W1[j, c] = alpha
            b1[j] = beta
            W2[:, j] = 0
            W2[c, j] = -(1 - OUTLIER_KEEP) / alpha
            b2[c] += (1 - OUTLIER_KEEP) * beta / alpha
        return [F.gelu(x @ W1.T + b1) @ W2.T + b2 for x in xs]

    def build(self):
        H, nh = self.H, self.nh
        hd = H // nh
        word = self.randn(self.V, H)
        word[m3ref.PAD] = 0  # padding_idx row, as in Hugging Face
        pos = 0.5 * self.randn(self.P, H)
        pos[m3ref.PAD] = 0
        self.w["embeddings.word_embeddings.weight"] = word
        self.w["embeddings.position_embeddings.weight"] = pos
        self.w["embeddings.token_type_embeddings.weight"] = 0.2 * self.randn(1, H)
        self.ln("embeddings.LayerNorm")
        xs = []
        for ids in self.calib:
            t = torch.tensor(ids)
            p = torch.arange(len(ids)) + 2
            xs.append(word[t] + pos[p] + self.w["embeddings.token_type_embeddings.weight"][0])
        xs = self.apply_ln(xs, "embeddings.LayerNorm")
        res_ln = "embeddings.LayerNorm"  # the LayerNorm whose output is the current residual
        for l in range(self.L):
            pre = f"encoder.layer.{l}."
            q = self.linear(pre + "attention.self.query", H, xs, 1.0, 0.1)
            k = self.linear(pre + "attention.self.key", H, xs, 1.0, 0.1)
            scores = []
            for qq, kk in zip(q, k):
                n = qq.shape[0]
                s = qq.view(n, nh, hd).transpose(0, 1) @ kk.view(n, nh, hd).permute(1, 2, 0) / math.sqrt(hd)
                scores.append(s.flatten())
            f = math.sqrt(ATTN_SCORE_STD / float(torch.cat(scores).std()))
            for nm in ("query", "key"):
                self.w[pre + f"attention.self.{nm}.weight"] *= f
                self.w[pre + f"attention.self.{nm}.bias"] *= f
            v = self.linear(pre + "attention.self.value", H, xs, 1.0, 0.1)
            ctxs = []
            for x, vv in zip(xs, v):
                n = x.shape[0]
                qq = x @ self.w[pre + "attention.self.query.weight"].T + self.w[pre + "attention.self.query.bias"]
                kk = x @ self.w[pre + "attention.self.key.weight"].T + self.w[pre + "attention.self.key.bias"]
                a = F.softmax(qq.view(n, nh, hd).transpose(0, 1) @ kk.view(n, nh, hd).permute(1, 2, 0)
                              / math.sqrt(hd), dim=-1)
                ctxs.append((a @ vv.view(n, nh, hd).transpose(0, 1)).transpose(0, 1).reshape(n, H))
            o = self.linear(pre + "attention.output.dense", H, ctxs, SUBLAYER_OUT_STD, 0.1, whiten=False)
            o = self.remove_offset(pre + "attention.output.dense", o, res_ln)
            xs = [x + oo for x, oo in zip(xs, o)]
            self.ln(pre + "attention.output.LayerNorm")
            xs = self.apply_ln(xs, pre + "attention.output.LayerNorm")
            h = self.linear(pre + "intermediate.dense", self.I, xs, FFN_PRE_STD, 0.5)
            h = [F.gelu(hh) for hh in h]
            o = self.linear(pre + "output.dense", H, h, SUBLAYER_OUT_STD, 0.1, whiten=False)
            o = self.remove_offset(pre + "output.dense", o, pre + "attention.output.LayerNorm")
            if l == self.L - 1 and self.fx.get("outliers", "gain") == "gain":
                o = self.cancel_outliers(pre, xs)
            xs = [x + oo for x, oo in zip(xs, o)]
            if l == self.L - 1:
                # Fine-tuned retrieval models spread their CLS vectors; a random one would put
                # every text's CLS close to one common direction (the <s> token's own content).
                # Centre the CLS input of the last LayerNorm over the calibration texts with the FFN
                # output bias.
                shift = torch.stack([x[0] for x in xs]).mean(0)
                self.w[pre + "output.dense.bias"] -= shift
                xs = [x - shift for x in xs]
            self.ln(pre + "output.LayerNorm", final=(l == self.L - 1))
            xs = self.apply_ln(xs, pre + "output.LayerNorm")
            res_ln = pre + "output.LayerNorm"
        self.w["pooler.dense.weight"] = 0.02 * self.randn(H, H)
        self.w["pooler.dense.bias"] = torch.zeros(H)
        self.final = xs
        heads = {}
        if self.fx["has_heads"]:
            cs = self.chan_std(xs)
            # ColBERT projection on whitened inputs with their dominant direction of variation
            # projected out (a trained head ignores it; random ones make all rows alike).
            z = torch.cat(xs) / cs[None, :]
            u = torch.linalg.svd(z - z.mean(0), full_matrices=False).Vh[0]
            cw = (self.randn(H, H) / math.sqrt(H)) @ (torch.eye(H) - torch.outer(u, u)) / cs[None, :]
            # Bias centres the rows over the calibration tokens: the last hidden states share a
            # common direction, which would make every ColBERT row alike (scores ~0.95+).
            y = torch.cat(xs) @ cw.T
            heads["colbert_linear"] = OrderedDict(weight=cw, bias=-y.mean(0) + 0.1 * y.std(0) * self.randn(H))
            sw = self.randn(1, H) / math.sqrt(H) / cs[None, :]
            pre_s = torch.cat(xs) @ sw[0]
            sw = sw * (SPARSE_PRE_STD / float(pre_s.std()))
            pre_s = torch.cat(xs) @ sw[0]
            bias = -float(torch.quantile(pre_s, 1 - SPARSE_POSITIVE))
            heads["sparse_linear"] = OrderedDict(weight=sw, bias=torch.tensor([bias], dtype=torch.float64))
        return self.w, heads


def store(t, dtype):
    return t.detach().to(dtype).contiguous().clone()


def write_weights(folder, fx, backbone, heads):
    dtype = fx["dtype"]
    files = []
    if fx["fmt"] == "bin":
        if fx.get("container") == "ordered":
            sd = OrderedDict((k, store(v, dtype)) for k, v in backbone.items())
            sd._metadata = OrderedDict([("", {"version": 1})])  # as Module.state_dict() carries
        else:
            sd = {k: store(v, dtype) for k, v in backbone.items()}
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
        files.append("pytorch_model.bin")
    else:
        sd = OrderedDict((fx["prefix"] + k, store(v, dtype)) for k, v in backbone.items())
        m3ref.write_safetensors(os.path.join(folder, "model.safetensors"), sd, metadata={"format": "pt"})
        files.append("model.safetensors")
    for name, t in heads.items():
        lin = torch.nn.Linear(t["weight"].shape[1], t["weight"].shape[0])
        with torch.no_grad():
            lin.weight.copy_(t["weight"])
            lin.bias.copy_(t["bias"])
        torch.save(lin.half().state_dict(), os.path.join(folder, name + ".pt"))
        files.append(name + ".pt")
    return files


def write_config(folder, fx, vocab):
    cfg = OrderedDict([
        ("architectures", ["XLMRobertaModel"]),
        ("attention_probs_dropout_prob", 0.1),
        ("bos_token_id", 0),
        ("classifier_dropout", None),
        ("eos_token_id", 2),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("hidden_size", fx["H"]),
        ("initializer_range", 0.02),
        ("intermediate_size", fx["ffn"]),
        ("layer_norm_eps", 1e-05),
        ("max_position_embeddings", fx["positions"]),
        ("model_type", "xlm-roberta"),
        ("num_attention_heads", fx["heads"]),
        ("num_hidden_layers", fx["layers"]),
        ("output_past", True),
        ("pad_token_id", 1),
        ("position_embedding_type", "absolute"),
        ("torch_dtype", {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[fx["dtype"]]),
        ("transformers_version", "4.33.0"),
        ("type_vocab_size", 1),
        ("use_cache", True),
        ("vocab_size", vocab),
    ])
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


README = """# {name}: synthetic random-weights model (test fixture)

NOT a trained model. A tiny XLM-RoBERTa / BGE-M3-shaped model with random weights, written
in the real Hugging Face file formats, used by the parity tests (tests/test_parity.cpp) and
as a demo model. Its outputs carry no meaning.

- shape: hidden {H}, {heads} heads, {layers} layers, FFN {ffn}, max_position_embeddings {positions}, vocab {vocab}
- files: config.json, sentencepiece.bpe.model (unigram, {spm_size} pieces, trained on
  tools/reference/corpus.txt), {files}
- {heads_line}
- reference.json: outputs of the float64 PyTorch reference (tools/reference/m3ref.py).
{long_section}
Regenerate with `/usr/bin/python3 tools/reference/make_fixtures.py` (see tools/reference/README.md).
"""


LONG_README = """
## reference.json "long_cases"

Inputs and outputs of `M3Reference.encode_long` (tools/reference/m3ref.py): MCLS and sliding
windows, sequences up to 2048 tokens. One object per case: `{"name", "text", "max_length",
"mcls", "long", "overlap", "windows", "dense", "sparse", "colbert_rows", "colbert_sample"}`.
- content = the text's piece ids without `<s>` (0) / `</s>` (2), untruncated.
- `mcls` N > 0: framed as `[0] c[0:N] [0] c[N:2N] ... [2]`, one `<s>` before every group of N
  content tokens, none when no content token follows (content a multiple of N: the last group
  is followed by `</s>`); empty content gives `[0, 2]`. Truncation keeps the longest content
  prefix m with m + max(1, ceil(m/N)) + 1 <= max_length. `mcls` 0: `[0] + c[:max_length-2] + [2]`.
  Positions are the ordinary XLM-R ones over the whole framed sequence (2, 3, 4, ...): an
  inserted `<s>` is an ordinary token.
- With MCLS: dense = L2-normalise(mean of the last hidden states at every position with id 0),
  no per-CLS normalisation; sparse as usual (`<s>` is skipped); colbert = the usual rows (every
  token after the leading `<s>`, `</s>` included) minus the rows of the inserted `<s>`.
- `long` "window": windows of L content tokens, L the most content that fits max_length after
  framing (mcls 0: max_length - 2); starts 0, S, 2S, ... with S = L - overlap, up to the first
  window with start + L >= len(content); each window is framed as above. dense =
  L2-normalise(mean of the windows' dense vectors); sparse = per id the max over windows (an id
  absent from a window contributes nothing; keys in first-seen order); colbert = every window's
  rows in window order. A content that fits one window gives one window, equal to "truncate".
- `windows`: the framed ids of each window (one list for "truncate"). `sparse` is an object
  `{"id": weight}`. `dense` and `sparse` are complete.
- ColBERT is sampled (the full rows would be ~10 MB): `colbert_rows` = the number of rows of the
  full colbert output above; `colbert_sample` = `[[row_index, row], ...]` in increasing row
  order for row 0, the last row, every row with index % {step} == 0 and, per window, its first and
  last row (window k's rows follow windows 0..k-1's; a window has len(window) - 1 - (inserted
  `<s>`) rows), so window boundaries are covered. Rows are written as shortest float32
  decimals, as in `cases`.
"""


def long_readme(long_cases, n_content, worst32, margin):
    """The `long` fixture's README section: semantics, the cases (n_content: content tokens of
    each case's text), the robustness numbers."""
    lines = [LONG_README.replace("{step}", str(COLBERT_SAMPLE_STEP)),
             "| name | text content tokens | max_length | mcls | long | overlap | framed window lengths | colbert rows "
             "| sampled rows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for o, n in zip(long_cases, n_content):
        lines.append(f"| {o['name']} | {n} | {o['max_length']} | {o['mcls']} | {o['long']} | {o['overlap']} "
                     f"| {', '.join(str(len(w)) for w in o['windows'])} | {o['colbert_rows']} "
                     f"| {len(o['colbert_sample'])} |")
    lines.append("")
    lines.append(textwrap.fill(
        f"Texts: consecutive lines of tools/reference/corpus.txt joined with a space (the long ones: runs "
        f"of 8 lines from several language blocks in turn). Robustness (asserted): in every long case each "
        f"id's largest sparse pre-activation is at least {LONG_SPARSE_MARGIN:g} from zero (here {margin:.2e}); "
        f"the float32 recomputation of the long cases meets the parity budgets 10x tighter: 1 - dense "
        f"cosine {1 - worst32['dense_cos']:.1e}, max |d| {worst32['dense_abs']:.1e}, sparse |dw| "
        f"{worst32['sparse_abs']:.1e} (same keys and order), 1 - ColBERT row cosine "
        f"{1 - worst32['colbert_cos']:.1e}.", width=95))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Reference outputs
# --------------------------------------------------------------------------------------------
def all_sparse_texts(cases, scores):
    out = [(c["text"], c["max_length"]) for c in cases]
    if scores:
        out += [(q, scores["max_query_length"]) for q in scores["queries"]]
        out += [(p, scores["max_passage_length"]) for p in scores["passages"]]
    return out


def min_sparse_margin(model, texts):
    worst = float("inf")
    for text, ml in texts:
        ids = model.tok.encode(text, ml)
        pre = model.sparse_pre(model.hidden(ids))
        for i, v in zip(ids, pre.tolist()):
            if i not in m3ref.SPARSE_SKIP:
                worst = min(worst, abs(v))
    return worst


def long_sparse_maxima(model, long_cases, bias=True):
    """Per long case and token id, the largest sparse pre-activation over all the case's tokens
    (all windows); bias=False: without the sparse bias (h @ w). An id's output weight is the
    relu of this maximum, so only the maxima decide which ids appear."""
    w = model.heads["sparse_linear"]["weight"][0]
    out = []
    for lc in long_cases:
        best = {}
        for ids in model.frame_long(lc["text"], lc["max_length"], lc["mcls"], lc["long"], lc["overlap"]):
            h = model.hidden(ids)
            pre = model.sparse_pre(h) if bias else h @ w
            for i, v in zip(ids, pre.tolist()):
                if i not in m3ref.SPARSE_SKIP:
                    best[i] = max(best.get(i, -math.inf), v)
        out.extend(best.values())
    return torch.tensor(out, dtype=torch.float64)


def fix_sparse_bias(folder, fx, backbone, heads, texts, long_cases=()):
    """Moves the (fp16) sparse bias in small deterministic steps until every relevant token's
    pre-activation is at least SPARSE_MARGIN away from zero, and every long case's per-id
    maximum (long_sparse_maxima) at least LONG_SPARSE_MARGIN. Returns (margin, step)."""
    stored = ({k: store(v, fx["dtype"]) for k, v in backbone.items()},
              {n: {k: store(v, torch.float16) for k, v in d.items()} for n, d in heads.items()})
    model = m3ref.M3Reference(folder, torch.float64, tensors=stored)
    w = model.heads["sparse_linear"]["weight"][0]
    pre0 = []
    for text, ml in texts:
        ids = model.tok.encode(text, ml)
        h = model.hidden(ids)
        pre0.extend(float(v) for i, v in zip(ids, (h @ w).tolist()) if i not in m3ref.SPARSE_SKIP)
    pre0 = torch.tensor(pre0, dtype=torch.float64)
    lmax = long_sparse_maxima(model, long_cases, bias=False) if long_cases else None
    base = float(heads["sparse_linear"]["bias"][0])
    for step in range(200):
        k = (step + 1) // 2 * (1 if step % 2 else -1)  # 0, 1, -1, 2, -2, ...
        b = float(torch.tensor(base + 0.0015 * k).to(torch.float16))
        margin = float((pre0 + b).abs().min())
        long_ok = lmax is None or float((lmax + b).abs().min()) > LONG_SPARSE_MARGIN
        if margin > SPARSE_MARGIN and long_ok:
            heads["sparse_linear"]["bias"] = torch.tensor([b], dtype=torch.float64)
            return margin, k
    raise RuntimeError(f"{fx['name']}: no sparse bias with margin {SPARSE_MARGIN}"
                       + (f" (long cases {LONG_SPARSE_MARGIN})" if long_cases else ""))


def case_output(model, c):
    r = model.encode(c["text"], c["max_length"])
    out = OrderedDict(text=c["text"], max_length=c["max_length"], ids=r["ids"], dense=r["dense"].tolist())
    if model.has_heads:
        out["sparse"] = [[i, w] for i, w in r["sparse"].items()]
        out["sparse_tokens"] = model.sparse_tokens(r["sparse"])
        # ColBERT rows are the bulk of the file: written as the shortest decimal that rounds
        # to the same float32 (the test reads them as float and compares rows by cosine).
        out["colbert"] = [[float(repr(np.float32(v))) for v in row] for row in r["colbert"].tolist()]
    return out, r


# Long cases' ColBERT rows (thousands of them) are sampled, not written in full: row 0, the last
# row, every COLBERT_SAMPLE_STEP-th row and the first and last row of each window.
COLBERT_SAMPLE_STEP = 23


def colbert_sample_rows(windows, mcls, n_rows):
    """Sorted row indices kept in a long case's "colbert_sample": 0, n_rows - 1, every index
    % COLBERT_SAMPLE_STEP == 0, and each window's first and last row (a window's rows: every
    framed token after the leading <s>, minus the inserted <s>)."""
    keep = set(range(0, n_rows, COLBERT_SAMPLE_STEP))
    start = 0
    for ids in windows:
        n = len(ids) - 1 - len(m3ref.inserted_cls_positions(len(ids), mcls))
        if n:
            keep.update((start, start + n - 1))
        start += n
    assert start == n_rows, (start, n_rows)
    if n_rows:
        keep.update((0, n_rows - 1))
    return sorted(keep)


def long_case_output(model, lc):
    """One long_cases entry: the inputs lc, the framed windows and the encode_long outputs, the
    ColBERT rows as "colbert_rows" (count) and "colbert_sample" ([row index, row] pairs,
    colbert_sample_rows). The full outputs are returned too (float32 check)."""
    r = model.encode_long(lc["text"], lc["max_length"], lc["mcls"], lc["long"], lc["overlap"])
    out = OrderedDict(lc)
    out["windows"] = r["windows"]
    out["dense"] = r["dense"].tolist()
    out["sparse"] = OrderedDict((str(i), w) for i, w in r["sparse"].items())
    rows = r["colbert"].tolist()
    out["colbert_rows"] = len(rows)
    out["colbert_sample"] = [[i, [float(repr(np.float32(v))) for v in rows[i]]]
                             for i in colbert_sample_rows(r["windows"], lc["mcls"], len(rows))]
    return out, r


def compare_fp32(name, ref64, ref32, scores64, scores32):
    """Float32 vs float64 worst-case numbers; asserts the parity budgets with MARGIN."""
    worst = dict(dense_cos=1.0, dense_abs=0.0, sparse_abs=0.0, colbert_cos=1.0, score_abs=0.0)
    for a, b in zip(ref64, ref32):
        assert a.get("ids") == b.get("ids") and a.get("windows") == b.get("windows")
        d64, d32 = a["dense"], b["dense"].to(torch.float64)
        worst["dense_cos"] = min(worst["dense_cos"], float(d64 @ d32 / d64.norm() / d32.norm()))
        worst["dense_abs"] = max(worst["dense_abs"], float((d64 - d32).abs().max()))
        if "sparse" in a:
            assert list(a["sparse"].keys()) == list(b["sparse"].keys()), f"{name}: sparse keys differ in float32"
            for k in a["sparse"]:
                worst["sparse_abs"] = max(worst["sparse_abs"], abs(a["sparse"][k] - b["sparse"][k]))
            c64, c32 = a["colbert"], b["colbert"].to(torch.float64)
            if c64.shape[0]:
                cos = (c64 * c32).sum(1) / c64.norm(dim=1) / c32.norm(dim=1)
                worst["colbert_cos"] = min(worst["colbert_cos"], float(cos.min()))
    if scores64:
        for key in scores64:
            for x, y in zip(scores64[key], scores32[key]):
                worst["score_abs"] = max(worst["score_abs"], abs(x - y))
    ok = (1 - worst["dense_cos"] <= (1 - BUDGET["dense_cos"]) / MARGIN
          and worst["dense_abs"] <= BUDGET["dense_abs"] / MARGIN
          and worst["sparse_abs"] <= BUDGET["sparse_abs"] / MARGIN
          and 1 - worst["colbert_cos"] <= (1 - BUDGET["colbert_cos"]) / MARGIN
          and worst["score_abs"] <= BUDGET["score_abs"] / MARGIN)
    return ok, worst


def stats(model, refs, calib_texts):
    """Non-degeneracy numbers: dense cosines, attention peakedness, sparse positive share."""
    vecs, seen = [], set()
    for r in refs:
        key = tuple(r["ids"])
        if key in seen:
            continue
        seen.add(key)
        vecs.append(r["dense"])
    D = torch.stack(vecs)
    cos = D @ D.T
    off = cos[~torch.eye(len(vecs), dtype=torch.bool)]
    maxp, pos_share, outl = [], [], []
    for t in calib_texts:
        ids = model.tok.encode(t, 128)
        h, attns = model.hidden(ids, return_attn=True)
        if len(ids) > 4:
            maxp.append(float(torch.stack([a.max(-1).values.mean() for a in attns]).mean()))
        if model.has_heads:
            pos_share.append(float((model.sparse_pre(h) > 0).double().mean()))
    # largest |activation| of an outlier channel vs the median |activation| (first layer's LN)
    return dict(dense_cos_max=float(off.max()), dense_cos_mean=float(off.mean()),
                attn_max_prob_mean=float(np.mean(maxp)),
                sparse_positive_share=float(np.mean(pos_share)) if pos_share else None)


def outlier_stats(model, texts):
    hs = []
    x_max_out, x_med = 0.0, []
    outl = outlier_channels(model.H)
    for t in texts:
        ids = model.tok.encode(t, 128)
        w = model.w
        ids_t = torch.tensor(ids)
        pos = torch.arange(len(ids)) + 2
        x = w["embeddings.word_embeddings.weight"][ids_t] + w["embeddings.position_embeddings.weight"][pos] + w["embeddings.token_type_embeddings.weight"][0]
        x = F.layer_norm(x, (model.H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-5)
        x_max_out = max(x_max_out, float(x[:, outl].abs().max()))
        normal = [c for c in range(model.H) if c not in outl]
        x_med.append(float(x[:, normal].abs().median()))
    return dict(embed_ln_outlier_absmax=x_max_out, embed_ln_normal_absmedian=float(np.median(x_med)))


def dump_reference(path, obj):
    """JSON with repr floats; one case per line to keep diffs readable."""
    parts = ["{"]
    keys = list(obj.keys())
    for ki, k in enumerate(keys):
        v = obj[k]
        end = "," if ki < len(keys) - 1 else ""
        if k in ("cases", "tokenizer_cases", "long_cases"):
            parts.append(f" {json.dumps(k)}: [")
            for i, c in enumerate(v):
                parts.append("  " + json.dumps(c, ensure_ascii=False, separators=(",", ":"))
                             + ("," if i < len(v) - 1 else ""))
            parts.append(" ]" + end)
        elif k == "scores":
            parts.append(f" {json.dumps(k)}: {{")
            sk = list(v.keys())
            for i, s in enumerate(sk):
                parts.append(f"  {json.dumps(s)}: " + json.dumps(v[s], ensure_ascii=False, separators=(",", ":"))
                             + ("," if i < len(sk) - 1 else ""))
            parts.append(" }" + end)
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}{end}")
    parts.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
    json.loads(open(path, encoding="utf-8").read())  # well-formed


def check_zip(path):
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos), f"{path}: compressed entries"
        return [i.filename for i in infos]


# --------------------------------------------------------------------------------------------
def make_fixture(fx, out_root, spm_paths, corpus, cases, tok_cases, scores):
    name = fx["name"]
    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    shutil.copyfile(spm_paths[fx["spm"]], os.path.join(folder, "sentencepiece.bpe.model"))
    tok = m3ref.XLMRTokenizer(os.path.join(folder, "sentencepiece.bpe.model"))
    vocab = tok.vocab_size
    write_config(folder, fx, vocab)

    # calibration: every 50th corpus line (all languages), as single sequences
    calib_texts = corpus[::50]
    calib_ids = [tok.encode(t, 128) for t in calib_texts]
    long_cases = build_long_cases(corpus, tok) if fx.get("long_cases") else []
    torch.manual_seed(fx["seed"])
    backbone, heads = Recipe(fx, vocab, calib_ids).build()
    sc = scores if fx["has_heads"] else None
    bias_step = None
    if fx["has_heads"]:
        margin, bias_step = fix_sparse_bias(folder, fx, backbone, heads, all_sparse_texts(cases, sc), long_cases)
    files = write_weights(folder, fx, backbone, heads)

    # Reference from the files as written (float64), and the float32 robustness check.
    m64 = m3ref.M3Reference(folder, torch.float64)
    m32 = m3ref.M3Reference(folder, torch.float32)
    out_cases, raw64, raw32 = [], [], []
    for c in cases:
        o, r = case_output(m64, c)
        out_cases.append(o)
        raw64.append(r)
        raw32.append(m32.encode(c["text"], c["max_length"]))
    ref = OrderedDict(model=name, has_heads=fx["has_heads"], cases=out_cases)
    ref["tokenizer_cases"] = []
    for tc in tok_cases:
        ids = m64.tok.encode(tc["text"], tc.get("max_length", 1 << 20))
        e = OrderedDict(text=tc["text"])
        if "max_length" in tc:
            e["max_length"] = tc["max_length"]
        e["ids"] = ids
        ref["tokenizer_cases"].append(e)
    s64 = s32 = None
    if fx["has_heads"]:
        pairs = [(sc["queries"][q], sc["passages"][p]) for q, p in sc["pairs"]]
        kw = dict(weights=sc["weights"], max_query_length=sc["max_query_length"],
                  max_passage_length=sc["max_passage_length"])
        s64 = m64.compute_score(pairs, **kw)
        s32 = m32.compute_score(pairs, **kw)
        ref["scores"] = OrderedDict(sc)
        ref["scores"].update(s64)
        assert min_sparse_margin(m64, all_sparse_texts(cases, sc)) > SPARSE_MARGIN
    long64, long32 = [], []
    if long_cases:
        assert fx["has_heads"]
        ref["long_cases"] = []
        for lc in long_cases:
            o, r = long_case_output(m64, lc)
            ref["long_cases"].append(o)
            long64.append(r)
            long32.append(m32.encode_long(lc["text"], lc["max_length"], lc["mcls"], lc["long"], lc["overlap"]))
        long_margin = float(long_sparse_maxima(m64, long_cases).abs().min())
        assert long_margin > LONG_SPARSE_MARGIN
    dump_reference(os.path.join(folder, "reference.json"), ref)

    ok, worst = compare_fp32(name, raw64 + long64, raw32 + long32, s64, s32)
    st = stats(m64, raw64, calib_texts)
    st.update(outlier_stats(m64, calib_texts[:40]))
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(README.format(
            name=name, H=fx["H"], heads=fx["heads"], layers=fx["layers"], ffn=fx["ffn"],
            positions=fx["positions"], vocab=vocab, spm_size=tok.spm_size,
            files=", ".join(files) + " (" + {torch.float32: "fp32", torch.float16: "fp16",
                                             torch.bfloat16: "bf16"}[fx["dtype"]] + " backbone)",
            heads_line=("heads: colbert_linear.pt and sparse_linear.pt (fp16), as FlagEmbedding saves them"
                        if fx["has_heads"] else "no colbert/sparse heads: a dense-only (sentence-transformers style) model"),
            long_section=long_readme(ref["long_cases"], [len(m64.content_ids(lc["text"])) for lc in long_cases],
                                     compare_fp32(name, long64, long32, None, None)[1], long_margin)
            if long_cases else ""))
    report = dict(name=name, files={f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))},
                  fp32_ok=ok, fp32_worst=worst, stats=st, sparse_bias_step=bias_step,
                  n_cases=len(out_cases), n_tokenizer_cases=len(ref["tokenizer_cases"]))
    if long_cases:
        report["long_sparse_margin"] = long_margin
        report["long_cases"] = {o["name"]: dict(content_tokens=len(m64.content_ids(o["text"])),
                                                window_tokens=[len(w) for w in o["windows"]],
                                                colbert_rows=o["colbert_rows"],
                                                colbert_sampled=len(o["colbert_sample"]))
                                for o in ref["long_cases"]}
    for f in files:
        if f.endswith((".bin", ".pt")):
            report.setdefault("zip_entries", {})[f] = check_zip(os.path.join(folder, f))
    if not ok:
        raise AssertionError(f"{name}: float32 recomputation misses the budgets with margin: {worst}")
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.txt"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    corpus = read_corpus(args.corpus)
    cases, tok_cases, scores = build_texts(corpus)
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spm_paths = {}
        for key, (vs, cov) in SPM_MODELS.items():
            spm_paths[key] = os.path.join(tmp, key + ".model")
            train_spm(args.corpus, vs, cov, spm_paths[key])
            h = hashlib.sha1(open(spm_paths[key], "rb").read()).hexdigest()
            print(f"spm {key}: vocab {vs}, sha1 {h}", file=sys.stderr)
        reports = []
        for fx in FIXTURES:
            if args.only and fx["name"] not in args.only:
                continue
            rep = make_fixture(fx, args.out, spm_paths, corpus, cases, tok_cases, scores)
            reports.append(rep)
            print(json.dumps(rep, indent=1, ensure_ascii=False), file=sys.stderr)
    print(f"torch {torch.__version__}, sentencepiece {spm.__version__}, numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
