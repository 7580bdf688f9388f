#!/usr/bin/python3
"""Builds a small multilingual text corpus from the gettext catalogs installed on this machine.

    /usr/bin/python3 tools/reference/make_corpus.py --out tools/reference/corpus.txt

Every `/usr/share/locale/<lang>/LC_MESSAGES/*.mo` of the languages in LANGS is read (the .mo
format is parsed here; it holds the same msgid/msgstr pairs `msgunfmt` prints). The
translations (msgstr values, every plural form) are cleaned lightly: printf/Python/shell
format specifiers and keyboard accelerators removed, whitespace collapsed. Strings of 3..200
characters that contain at least one letter are kept. English comes from the msgid side.

Selection is deterministic for a given set of catalogs: per language the unique strings are
ordered by their SHA-1 and the first --per-lang are taken; the output is grouped by language
in LANGS order. The corpus that the committed fixtures were trained on is committed next to
this script (corpus.txt), so regenerating the fixtures does not depend on which .mo files a
machine happens to have.
"""
import argparse
import glob
import hashlib
import os
import re
import struct
import sys
import unicodedata

# Language directories, in output order. Chosen to cover many scripts: Latin, Cyrillic, Greek,
# Arabic, Hebrew, Devanagari, Bengali, Tamil, Thai, Georgian, Armenian, CJK, Hangul.
LANGS = [
    "en", "de", "fr", "es", "it", "pt_BR", "nl", "sv", "da", "fi", "pl", "cs", "sk", "hu",
    "ro", "tr", "vi", "id", "ca", "eu", "lt", "et", "ru", "uk", "bg", "sr", "el", "he", "ar",
    "fa", "hi", "bn", "ta", "th", "ka", "hy", "ja", "ko", "zh_CN", "zh_TW",
]

FORMAT_RE = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I64|I32)?"
    r"[diouxXeEfFgGaAcspnmC%]"          # printf
    r"|%\([A-Za-z_][A-Za-z0-9_]*\)[sdifrx]"  # python %(name)s
    r"|\{[A-Za-z0-9_.:]*\}"               # python/brace {0} {name}
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"    # shell $VAR ${VAR}
    r"|<[^<>\s][^<>]{0,40}>"              # markup tags <b>, </a>, <file>
)
ACCEL_RE = re.compile(r"(?<![\w&_])[_&](?=\w)")  # _File, &Open (not snake_case words)
SPACE_RE = re.compile(r"\s+")
# Quotes or brackets left empty once a specifier inside them is gone: "%s" -> "".
EMPTY_QUOTES_RE = re.compile(r"""(["'`“„‘«「『(\[])\s?(["'`”“’»」』)\]])""")


def read_mo(path):
    """Returns [(msgid, [msgstr forms])] of a GNU .mo file (either byte order)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        end = "<"
    elif magic == 0xDE120495:
        end = ">"
    else:
        return []
    _, n, orig_off, trans_off = struct.unpack(end + "4I", data[4:20])
    entries = []
    charset = "utf-8"
    for i in range(n):
        olen, ooff = struct.unpack(end + "2I", data[orig_off + 8 * i:orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(end + "2I", data[trans_off + 8 * i:trans_off + 8 * i + 8])
        msgid = data[ooff:ooff + olen]
        msgstr = data[toff:toff + tlen]
        if olen == 0:  # header
            m = re.search(rb"charset=([A-Za-z0-9_-]+)", msgstr)
            if m:
                charset = m.group(1).decode("ascii")
            continue
        entries.append((msgid, msgstr))
    out = []
    for msgid, msgstr in entries:
        try:
            mid = msgid.decode(charset)
            forms = msgstr.decode(charset).split("\x00")
        except (UnicodeDecodeError, LookupError):
            continue
        if "\x04" in mid:  # msgctxt
            mid = mid.split("\x04", 1)[1]
        out.append((mid.split("\x00")[0], forms))
    return out


def clean(s):
    s = s.replace("\\n", " ").replace("\\t", " ")
    s = FORMAT_RE.sub(" ", s)
    s = ACCEL_RE.sub("", s)
    s = s.replace("\u200b", "").replace("\ufeff", "")
    s = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in s)
    s = SPACE_RE.sub(" ", s)
    s = EMPTY_QUOTES_RE.sub(" ", s)
    s = SPACE_RE.sub(" ", s).strip(" -:;,|")
    return s


def acceptable(s):
    if not 3 <= len(s) <= 200:
        return False
    letters = sum(1 for ch in s if unicodedata.category(ch).startswith("L"))
    if letters < 2 or letters < len(s) * 0.4:
        return False
    if "\ufffd" in s or "/" in s and " " not in s:
        return False
    return True


def collect(lang, use_msgid):
    found = set()
    for path in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        if os.path.basename(path).startswith("iso_"):  # lists of names, not sentences
            continue
        for mid, forms in read_mo(path):
            texts = [mid] if use_msgid else forms
            for t in texts:
                c = clean(t)
                if acceptable(c):
                    found.add(c)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-lang", type=int, default=220)
    args = ap.parse_args()
    lines = []
    summary = []
    for lang in LANGS:
        if lang == "en":
            found = collect("de", use_msgid=True)
        else:
            found = collect(lang, use_msgid=False)
        ranked = sorted(found, key=lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
        take = ranked[:args.per_lang]
        summary.append(f"{lang}:{len(take)}/{len(found)}")
        lines.extend(take)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    n_lang = sum(1 for s in summary if not s.split(":")[1].startswith("0/"))
    print(f"make_corpus: {len(lines)} lines, {n_lang} languages -> {args.out}", file=sys.stderr)
    print("  " + " ".join(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
