#!/usr/bin/env python3
"""Reference token ids for the SD 2.1 CLIP tokenizer (crates/sd/src/tokenizer.rs).

Writes tests/cases/tokenizer/sd21.json, read by crates/sd/tests/sd_tokenizer.rs (extra case files from
$SPLATDREAM_TOKENIZER_CASES, same format):

    {"source": "...", "cases": [{"prompt": str, "input_ids": [77 ints]}, ...]}

`input_ids` is what diffusers feeds SD 2.1's text encoder:
`CLIPTokenizer.from_pretrained(<model>/tokenizer)(prompt, padding="max_length", max_length=77,
truncation=True).input_ids`, with transformers' *slow* (pure Python) `CLIPTokenizer` and without
the optional `ftfy` package (transformers then cleans text with its `BasicTokenizer`). Prompts:
the 415 DreamFusion gallery prompts (Apache-2.0) and the hand-written edge cases in EDGE_CASES.

Pinned versions (kept here rather than in tools/requirements*.txt):

    transformers==4.57.1   (tokenizers==0.22.2 comes with it; no torch needed)
    ftfy must NOT be installed

transformers 5.x no longer has the slow tokenizer: its `CLIPTokenizer` is the `tokenizers`-backed
one, which differs from the slow one on CJK text (no per-ideograph split), control/format
characters (kept instead of deleted) and Greek final sigma. The script refuses to run with it.
A throwaway environment:

    python3 -m venv ~/.cache/splatdream/venv-tok4
    ~/.cache/splatdream/venv-tok4/bin/pip install transformers==4.57.1
    ~/.cache/splatdream/venv-tok4/bin/python tools/gen_tokenizer_cases.py

Paths default to the shared data next to the repository (`../shared/data/...`, relative to the
repository root); override them with --tokenizer-dir / --prompts / --out.

Known difference between the slow tokenizer and the Rust pipeline, kept out of the committed
file: characters assigned after Unicode 14.0 (the tables of Python 3.11's `unicodedata`). The
slow tokenizer deletes them as unassigned (category Cn); the Rust normalizer's regex tables are
newer (Unicode 16) and keep them. Ids without padding:

    "🪮 hair pick (Unicode 15)"   U+1FAAE, Unicode 15.0
        slow [49406, 2225, 3142, 263, 7648, 19639, 272, 276, 264, 49407]
        rust [49406, 558, 103, 362, 2225, 3142, 263, 7648, 19639, 272, 276, 264, 49407]
    "𓚜"   U+1369C, Egyptian hieroglyph, Unicode 16.0
        slow [49406, 49407]
        rust [49406, 172, 241, 248, 506, 49407]

The reference itself moves with the Python version (3.12 has Unicode 15.0, 3.13 15.1). In a
stress run of 5000 random strings of assigned (Unicode 14) characters mixed with the awkward
characters of EDGE_CASES, the Rust tokenizer matched the slow one on all of them; of 3000
drawn from all code points, the 45 mismatches all contained such newly assigned characters.
Run with --show-excluded to print both outputs for these.
"""
import argparse
import json
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MAX_LENGTH = 77

EDGE_CASES = [
    "",
    " ",
    "   \t\n  ",
    "a photo of a cat",
    "A Photo Of A CAT",
    "AN ASTRONAUT RIDING A HORSE ON MARS",
    "wow!!! really?! no... yes;;; ok?!?!",
    "hello!world",
    "!!!",
    "! ! !",
    "---===+++***",
    "(masterpiece), [best quality], {ultra detailed}, <lora:foo:0.8>",
    "it's the cat's toy, don't stop, we're here, they've gone, I'm fine, we'll see, he'd go",
    "IT'S THE CAT'S TOY",
    "'s 't 're",
    "rock 'n' roll",
    "1 12 123 2023 3.14159 1,000,000 4k 8K 1080p 50mm f/1.8",
    "a 20-sided die, a well-known state-of-the-art sci-fi x-ray",
    "café naïve résumé jalapeño crème brûlée Ångström Øresund straße",
    "CAFÉ NAÏVE",
    "cafe\u0301 (combining accent)",
    "日本語のテキスト",
    "中文提示词：一只猫",
    "한국어 텍스트",
    "русский текст, Москва",
    "ελληνικά, ΟΔΟΣ ΣΟΦΙΑΣ Σ",
    "עברית ועוד",
    "العربية",
    "हिन्दी",
    "ไทย",
    "emoji 😀🐱🚀 and ❤️ and 👍🏽 and 👨‍👩‍👧",
    "multiple     spaces\tand\ttabs\nand\nnewlines\r\nand\u00a0nbsp",
    "  leading and trailing  ",
    "&amp; &lt;tag&gt; &quot;quoted&quot; &#39;",
    "<html><body>hi</body></html>",
    "a <|startoftext|> b <|endoftext|> c",
    "<|ENDOFTEXT|> <|EndOfText|>",
    "zero\u200bwidth\u200dspace and soft\u00adhyphen",
    "control\x00chars\x07here\x1b[0m",
    "replacement \ufffd char",
    "ﬁne ligature, İstanbul, ǅ",
    "Kelvin \u212a and long ſ",
    "\u2028line\u2029para\u0085nel",
    "full\uff37idth ＡＢＣ １２３",
    "math 𝐀𝐁𝐂 ∑∫√ ≤≥",
    "\U0001F600" * 80,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 300,
    " ".join(["word"] * 300),
    " ".join(f"token{i}" for i in range(120)),
    "a DSLR photo of " + ", ".join(["a cat"] * 40),
    " ".join(["a"] * 75),
    " ".join(["a"] * 76),
    " ".join(["a"] * 74) + " !",
    " ".join(["a"] * 74) + " cat!",
    # Final sigma across case-ignorable characters (Python's str.lower).
    "Α'Σ ΑΣ.Σ. Σ:Σ ΣΑΣ'",
    # Special tokens spelt otherwise: a word of CLIP's regex unless punctuation precedes them.
    "?<|ENDOFTEXT|> x <|EndOfText|> y",
    "a<|endof\u200btext|>b 😀<|ENDOFTEXT|> it's<|STARTOFTEXT|> !<|ENDOFTEXT|>",
]

# Known differences (see the docstring); --show-excluded prints the slow tokenizer's output.
EXCLUDED = [
    "\U0001FAAE hair pick (Unicode 15)",
    "\U0001369C",
]


def write_cases(out, source, cases, text_pipeline=None):
    """Write a case file, one case per line (the format crates/sd/tests/sd_tokenizer.rs reads);
    `text_pipeline` adds that field (absent: transformers-slow)."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f'  "source": {json.dumps(source)},\n')
        if text_pipeline is not None:
            f.write(f'  "text_pipeline": {json.dumps(text_pipeline)},\n')
        f.write('  "cases": [\n')
        for i, c in enumerate(cases):
            sep = "," if i + 1 < len(cases) else ""
            f.write(f'    {{"prompt": {json.dumps(c["prompt"])}, "input_ids": {json.dumps(c["input_ids"])}}}{sep}\n')
        f.write("  ]\n}\n")


def read_prompts(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer-dir", default="../shared/data/sd21/base/tokenizer",
                    help="SD 2.1 tokenizer folder (vocab.json, merges.txt, special_tokens_map.json); "
                         "relative paths are from the repository root")
    ap.add_argument("--prompts", default="../shared/data/prompts/dreamfusion_gallery_415.txt")
    ap.add_argument("--out", default="tests/cases/tokenizer/sd21.json")
    ap.add_argument("--show-excluded", action="store_true",
                    help="print the slow tokenizer's ids for the known differences and exit")
    args = ap.parse_args()
    path = lambda p: p if os.path.isabs(p) else os.path.join(ROOT, p)

    import transformers
    from transformers import CLIPTokenizer

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        sys.exit(f"transformers {transformers.__version__} has no slow CLIPTokenizer; "
                 "use transformers==4.57.1 (see this script's docstring)")
    tok = CLIPTokenizer.from_pretrained(path(args.tokenizer_dir))
    if getattr(tok, "fix_text", None) is not None:
        sys.exit("ftfy is installed; the reference is the tokenizer without ftfy (uninstall it)")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 0), \
        (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)

    def encode(prompt):
        ids = tok(prompt, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids
        assert len(ids) == MAX_LENGTH and ids[0] == 49406 and 49407 in ids, (prompt, ids)
        return ids

    if args.show_excluded:
        for p in EXCLUDED:
            ids = tok(p).input_ids
            print(json.dumps(p, ensure_ascii=False), ids, tok.tokenize(p))
        return

    prompts = read_prompts(path(args.prompts))
    assert len(prompts) == 415, len(prompts)
    cases, seen = [], set()
    for p in prompts + EDGE_CASES:
        if p in seen:
            continue
        seen.add(p)
        cases.append({"prompt": p, "input_ids": encode(p)})

    out = path(args.out)
    doc = {
        "source": f"transformers {transformers.__version__} slow CLIPTokenizer (no ftfy) on "
                  f"the SD 2.1 tokenizer folder; padding=max_length, max_length={MAX_LENGTH}, "
                  "truncation=True; tools/gen_tokenizer_cases.py",
        "cases": cases,
    }
    write_cases(out, doc["source"], cases)
    print(f"wrote {len(cases)} cases to {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
