#!/usr/bin/env python3
"""Reference token ids from open_clip's tokenizer, the one Stable Diffusion 2.x was trained with.

Writes tests/cases/tokenizer/sd21-open-clip.json, read by crates/sd/tests/sd_tokenizer.rs for
the default text pipeline of crates/sd/src/tokenizer (`TextPipeline::OpenClip`). Same format as
tools/gen_tokenizer_cases.py, plus `"text_pipeline": "open_clip"`:

    {"source": "...", "text_pipeline": "open_clip",
     "cases": [{"prompt": str, "input_ids": [77 ints]}, ...]}

`input_ids` is what SD 2.x's `FrozenOpenCLIPEmbedder` (Stability's `ldm/modules/encoders`)
feeds the OpenCLIP ViT-H/14 text tower: `open_clip.tokenize(prompt)`, i.e. open_clip's
`SimpleTokenizer` with `clean="lower"` (ftfy.fix_text, html.unescape twice, whitespace
collapsed, str.lower), BOS + tokens + EOS, cut to 77 with EOS last, padded with 0.

Prompts: the 415 DreamFusion gallery prompts, tools/gen_tokenizer_cases.py's EDGE_CASES, the
EXTRA cases below (CJK, punctuation runs, ftfy's fixes, HTML entities) and FUZZ random strings
drawn from awkward characters (seeded). Left out, and counted in `source`: strings on which
ftfy's mojibake repair (`fix_encoding`) changes the text — the Rust tokenizer does not repair
mojibake (see the module documentation of crates/sd/src/tokenizer) — and characters Python
3.11's `unicodedata` (Unicode 14.0) does not know, whose classes the Rust tables (newer) know.

Pinned versions (a throwaway environment; torch is not needed: the script loads
open_clip/tokenizer.py alone with a stand-in `torch` module, since `SimpleTokenizer.encode`
never touches torch):

    open_clip_torch==3.2.0 (installed with --no-deps)  ftfy==6.3.1  regex==2026.12.2
    numpy==2.4.6

    python3 -m venv ~/.cache/splatdream/venv-oc
    ~/.cache/splatdream/venv-oc/bin/pip install --no-deps open_clip_torch==3.2.0
    ~/.cache/splatdream/venv-oc/bin/pip install ftfy==6.3.1 regex==2026.12.2 numpy==2.4.6
    ~/.cache/splatdream/venv-oc/bin/python tools/gen_open_clip_tokenizer_cases.py
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import types
import unicodedata

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_cases import EDGE_CASES, read_prompts, write_cases  # noqa: E402

MAX_LENGTH = 77

EXTRA = [
    "東京の夜景",
    "東京の夜景, 8k, trending on artstation",
    "一只可爱的猫，坐在窗台上",
    "可愛い猫のイラスト",
    "a 東京 tower at night",
    "한국어 고양이 사진",
    "𠀀𠀁 (CJK extension B)",
    "wow!!! really?!",
    "hello! world!",
    "!",
    "a photo of a corgi!!!",
    "“curly quotes” and ‘single’ ones, it’s fine",
    "ﬂuﬃest ﬁsh, Ĳssel, ǅemal",
    "ＬＯＵＤ　ＮＯＩＳＥＳ and ｶﾀｶﾅ",
    "\x1b[31mred\x1b[0m text",
    "\ufeffbom first",
    "annotation\ufff9x\ufffay\ufffbz\ufffc",
    "c1 controls \x80 \x85 \x91quoted\x92 \x81",
    "&lt;tag&gt; &amp;amp; &amp;lt;b&amp;gt;",
    "P&EACUTE;REZ &NTILDE; &nTILDE; BUNDESSTRA&SZLIG;E",
    "&copy 2024 &notit; &ampxyz; &#x80; &#128; &#0; &#xD800; &#x110000; &#1;",
    "&checkmark; &Jscr;ohn &HilbertSpace;ancock",
    "<b>bold &amp; html</b>",
    "first line\n<b> then &amp; html",
    "&amp; first\nthen <b>",
    "<start_of_text> hi <END_OF_TEXT> !<start_of_text>",
    "a<start_of_text>b",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen",
    "\u2028line\u2029para\u0085nel\r\nwin\rmac",
    "tabs\tand\x0bvertical\x0cform\x1cfile",
    "ΟΔΟΣ ΣΟΦΙΑΣ",
    "İstanbul ǅ ﬁ",
    "trailing   ",
    "\u3000ideographic\u3000space\u3000",
]

# Characters the fuzz strings are drawn from (as in crates/sd's `arbitrary_strings` test).
FUZZ_POOL = (
    " !\"#&'()*,-.;<>?|~\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\u200b\u200d\ufeff\ufffd\x00\x07\x1b"
    "aAsStzZ09Σσς\u0301\u0345İıſ\u212a\u01c5ﬁﬀ\uff21\uff41\uff10\uff65\uffe0"
    "日本語東京のネコ한국中文😀🐱\U00020000é\u00e9e\u0301ß\u201c\u201d\u2018\u2019\x80\x92\x9f"
)
FUZZ_PIECES = ["&amp;", "&lt;", "&#39;", "&#x80;", "&copy", "&NTILDE;", "<start_of_text>",
               "<|endoftext|>", "'s", "'ll", "!!!", "\x1b[0m", "cat", "a photo of"]
FUZZ_COUNT = 600
FUZZ_SEED = 20261205


def load_open_clip_tokenizer():
    torch = types.ModuleType("torch")
    torch.LongTensor = torch.Tensor = object
    sys.modules.setdefault("torch", torch)
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("open_clip is not installed (see this script's docstring)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer.py")
    mspec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def fuzz_strings():
    rng = random.Random(FUZZ_SEED)
    out = []
    for _ in range(FUZZ_COUNT):
        parts = []
        for _ in range(rng.randrange(0, 24)):
            if rng.random() < 0.15:
                parts.append(rng.choice(FUZZ_PIECES))
            else:
                parts.append(rng.choice(FUZZ_POOL))
        out.append("".join(parts))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", default="../shared/data/prompts/dreamfusion_gallery_415.txt")
    ap.add_argument("--out", default="tests/cases/tokenizer/sd21-open-clip.json")
    args = ap.parse_args()
    path = lambda p: p if os.path.isabs(p) else os.path.join(ROOT, p)

    import ftfy
    from importlib.metadata import version

    tok_module = load_open_clip_tokenizer()
    tok = tok_module.SimpleTokenizer()
    sot, eot = tok.sot_token_id, tok.eot_token_id
    assert (sot, eot) == (49406, 49407), (sot, eot)

    def encode(prompt):
        ids = [sot] + tok.encode(prompt) + [eot]
        if len(ids) > MAX_LENGTH:
            ids = ids[:MAX_LENGTH]
            ids[-1] = eot
        return ids + [0] * (MAX_LENGTH - len(ids))

    def excluded(prompt):
        if ftfy.fix_text(prompt) != ftfy.fix_text(prompt, fix_encoding=False):
            return "mojibake"
        if any(unicodedata.category(c) == "Cn" for c in prompt):
            return "unassigned"
        return None

    prompts = read_prompts(path(args.prompts))
    assert len(prompts) == 415, len(prompts)
    cases, seen, left_out = [], set(), {}
    for p in prompts + EDGE_CASES + EXTRA + fuzz_strings():
        if p in seen:
            continue
        seen.add(p)
        why = excluded(p)
        if why:
            left_out[why] = left_out.get(why, 0) + 1
            continue
        cases.append({"prompt": p, "input_ids": encode(p)})

    out = path(args.out)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())) or "none"
    source = (f"open_clip_torch {version('open_clip_torch')} SimpleTokenizer (clean='lower'), "
              f"ftfy {ftfy.__version__}, Python {sys.version.split()[0]}; BOS + ids + EOS cut "
              f"to {MAX_LENGTH} with EOS last, padded with 0; left out: {skipped}; "
              "tools/gen_open_clip_tokenizer_cases.py")
    write_cases(out, source, cases, text_pipeline="open_clip")
    print(f"wrote {len(cases)} cases to {os.path.relpath(out, ROOT)} (left out: {skipped})")


if __name__ == "__main__":
    main()
