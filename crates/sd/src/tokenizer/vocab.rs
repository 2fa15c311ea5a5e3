//! The CLIP vocabulary and merge list (from OpenAI's merge file or a diffusers `tokenizer/`
//! folder) and the `tokenizer.json` that the `tokenizers` crate builds each text pipeline from.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{
    BOS_TOKEN, EOS_TOKEN, NUM_MERGES, PAD_TOKEN, TextPipeline, TokenizerError, VOCAB_SIZE,
};

/// Whitespace as `BasicTokenizer` sees it (`\t\n\r` and `Zs`; `Zl`/`Zp` split Python's
/// `str.split`), collapsed to one space.
const WHITESPACE_RE: &str = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]+";
/// What `BasicTokenizer._clean_text` deletes: NUL, U+FFFD and category `C*` other than `\t\n\r`
/// (already turned into spaces by [`WHITESPACE_RE`]). Surrogates cannot occur in a `&str`.
const REMOVED_RE: &str = r"[\p{Cc}\p{Cf}\p{Co}\p{Cn}\x{FFFD}]";
/// Python's `str.lower` maps a capital sigma that ends a word to `ς` (Unicode's Final_Sigma
/// context): preceded by a cased letter and case-ignorable characters, and not followed by
/// case-ignorable characters and a cased letter. `\K` keeps the match to the sigma alone.
const FINAL_SIGMA_RE: &str = r"\p{Cased}\p{Case_Ignorable}*\KΣ(?!\p{Case_Ignorable}*\p{Cased})";
/// The CJK ideograph blocks of `BasicTokenizer._is_chinese_char`.
const CJK_RE: &str = r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]";
/// CLIP's word regex (`simple_tokenizer.py`, compiled with `re.IGNORECASE` there).
const CLIP_WORD_RE: &str = r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// open_clip's word regex (`open_clip/tokenizer.py`, `re.IGNORECASE`): its special tokens are
/// spelt `<start_of_text>` and `<end_of_text>`.
const OPEN_CLIP_WORD_RE: &str =
    r"(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// open_clip's spelling of the beginning-of-sequence token (id [`super::BOS_ID`]).
pub(super) const OPEN_CLIP_BOS_TOKEN: &str = "<start_of_text>";
/// open_clip's spelling of the end-of-sequence token (id [`super::EOS_ID`]).
pub(super) const OPEN_CLIP_EOS_TOKEN: &str = "<end_of_text>";

/// A vocabulary and merge list in CLIP's layout, plus where it came from.
pub(super) struct Vocabulary {
    /// Token → id.
    pub(super) vocab: Map<String, Value>,
    /// Merges in rank order.
    pub(super) merges: Vec<(String, String)>,
    /// The pad token (must be in `vocab`).
    pub(super) pad: String,
    /// The file errors name.
    pub(super) source: PathBuf,
}

/// GPT-2 / CLIP `bytes_to_unicode`: the character standing for each byte, in CLIP's vocabulary
/// order (printable Latin-1 bytes first, then the others mapped to U+0100 …).
fn byte_level_chars() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut out: Vec<(u8, char)> = (0..=255u8)
        .filter(|&b| printable(b))
        .map(|b| (b, char::from(b)))
        .collect();
    // U+0100 + n for the n-th other byte: below U+0200, always a valid scalar value.
    let others = (0..=255u8).filter(|&b| !printable(b));
    out.extend(others.zip('\u{100}'..));
    out
}

/// Parses merge lines (`"a b"`) as CLIP does: skip the header line, take lines `1 ..= 48894`.
fn parse_merges(text: &str, path: &Path) -> Result<Vec<(String, String)>, TokenizerError> {
    let lines: Vec<&str> = text.trim().split('\n').skip(1).take(NUM_MERGES).collect();
    if lines.len() < NUM_MERGES {
        return Err(TokenizerError::Invalid {
            path: path.to_path_buf(),
            what: format!(
                "{} merge lines after the header, CLIP needs {NUM_MERGES}",
                lines.len()
            ),
        });
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [a, b] => Ok((a.to_string(), b.to_string())),
                _ => Err(TokenizerError::Invalid {
                    path: path.to_path_buf(),
                    what: format!("line {}: {line:?} is not a merge \"a b\"", i + 2),
                }),
            }
        })
        .collect()
}

impl Vocabulary {
    /// CLIP's vocabulary from the (uncompressed) text of `bpe_simple_vocab_16e6.txt`.
    pub(super) fn from_merges_text(text: &str, path: &Path) -> Result<Self, TokenizerError> {
        let merges = parse_merges(text, path)?;
        let chars = byte_level_chars();
        let mut tokens: Vec<String> = Vec::with_capacity(VOCAB_SIZE);
        tokens.extend(chars.iter().map(|(_, c)| c.to_string()));
        tokens.extend(chars.iter().map(|(_, c)| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.push(BOS_TOKEN.to_string());
        tokens.push(EOS_TOKEN.to_string());
        let mut vocab = Map::new();
        for (id, token) in tokens.into_iter().enumerate() {
            if vocab.insert(token.clone(), json!(id)).is_some() {
                return Err(TokenizerError::Invalid {
                    path: path.to_path_buf(),
                    what: format!("token {token:?} occurs twice in the vocabulary"),
                });
            }
        }
        Ok(Self {
            vocab,
            merges,
            pad: PAD_TOKEN.to_string(),
            source: path.to_path_buf(),
        })
    }

    /// CLIP's vocabulary from gzip-compressed `bpe_simple_vocab_16e6.txt` bytes.
    pub(super) fn from_merges_gz(gz: &[u8], path: &Path) -> Result<Self, TokenizerError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|source| TokenizerError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_merges_text(&text, path)
    }

    /// A diffusers / transformers tokenizer folder: `vocab.json`, `merges.txt` and optionally
    /// `special_tokens_map.json` (for the pad token; `"!"` when absent).
    pub(super) fn from_tokenizer_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (text, path.clone()))
                .map_err(|source| TokenizerError::Read { path, source })
        };
        let invalid = |path: &Path, what: String| TokenizerError::Invalid {
            path: path.to_path_buf(),
            what,
        };

        let (text, vocab_path) = read("vocab.json")?;
        let vocab: Map<String, Value> = serde_json::from_str(&text)
            .map_err(|e| invalid(&vocab_path, format!("not a JSON object of token ids: {e}")))?;
        let mut seen = vec![false; vocab.len()];
        for (token, id) in &vocab {
            let id = id
                .as_u64()
                .and_then(|id| usize::try_from(id).ok())
                .filter(|&id| id < vocab.len())
                .ok_or_else(|| {
                    invalid(
                        &vocab_path,
                        format!("token {token:?} has id {id}, not an integer below the vocabulary size {}", vocab.len()),
                    )
                })?;
            if std::mem::replace(&mut seen[id], true) {
                return Err(invalid(&vocab_path, format!("id {id} is used twice")));
            }
        }
        for special in [BOS_TOKEN, EOS_TOKEN] {
            if !vocab.contains_key(special) {
                return Err(invalid(&vocab_path, format!("no {special} token")));
            }
        }

        let (text, merges_path) = read("merges.txt")?;
        let merges = parse_merges(&text, &merges_path)?;
        for (a, b) in &merges {
            for part in [a, b, &format!("{a}{b}")] {
                if !vocab.contains_key(part.as_str()) {
                    return Err(invalid(
                        &merges_path,
                        format!(
                            "merge \"{a} {b}\": {part:?} is not in {}",
                            vocab_path.display()
                        ),
                    ));
                }
            }
        }

        let map_path = dir.join("special_tokens_map.json");
        let pad = if map_path.is_file() {
            let (text, map_path) = read("special_tokens_map.json")?;
            let map: Value = serde_json::from_str(&text)
                .map_err(|e| invalid(&map_path, format!("not JSON: {e}")))?;
            let pad = match map.get("pad_token") {
                None | Some(Value::Null) => PAD_TOKEN.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v
                    .get("content")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| invalid(&map_path, format!("pad_token {v} has no content")))?,
            };
            if !vocab.contains_key(&pad) {
                return Err(invalid(
                    &map_path,
                    format!("pad_token {pad:?} is not in {}", vocab_path.display()),
                ));
            }
            pad
        } else {
            PAD_TOKEN.to_string()
        };

        Ok(Self {
            vocab,
            merges,
            pad,
            source: dir.to_path_buf(),
        })
    }

    /// The `tokenizer.json` text for `pipeline` (without truncation and padding, which
    /// [`super::ClipTokenizer::to_json`] adds through the `tokenizers` API). For
    /// [`TextPipeline::OpenClip`] it has no normalizer: `clean::open_clip_clean` runs first.
    pub(super) fn to_json(&self, pipeline: TextPipeline) -> String {
        // The slow tokenizer splits its special tokens off the raw text, case-sensitively
        // (`normalized: false`); see `ClipTokenizer::special_pieces` for the other spellings.
        // open_clip has no added tokens: `"!"` is an ordinary character there.
        let added = |content: &str| {
            json!({
                "id": self.vocab[content],
                "content": content,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        };
        let mut added_tokens = vec![];
        if pipeline == TextPipeline::TransformersSlow {
            added_tokens.extend([added(BOS_TOKEN), added(EOS_TOKEN)]);
            if self.pad != BOS_TOKEN && self.pad != EOS_TOKEN {
                added_tokens.push(added(&self.pad));
            }
        }
        let replace = |pattern: &str, content: &str| json!({"type": "Replace", "pattern": {"Regex": pattern}, "content": content});
        let special =
            |token: &str| json!({"id": token, "ids": [self.vocab[token]], "tokens": [token]});
        let merges: Vec<Value> = self.merges.iter().map(|(a, b)| json!([a, b])).collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false});
        let (normalizer, pre_tokenizers) = match pipeline {
            TextPipeline::TransformersSlow => (
                json!({
                    "type": "Sequence",
                    "normalizers": [
                        replace(WHITESPACE_RE, " "),
                        replace(REMOVED_RE, ""),
                        {"type": "NFC"},
                        replace(FINAL_SIGMA_RE, "ς"),
                        {"type": "Lowercase"},
                    ],
                }),
                vec![
                    json!({"type": "Split", "pattern": {"Regex": CJK_RE}, "behavior": "Isolated", "invert": false}),
                    json!({"type": "Split", "pattern": {"Regex": CLIP_WORD_RE}, "behavior": "Removed", "invert": true}),
                    byte_level,
                ],
            ),
            TextPipeline::OpenClip => (
                Value::Null,
                vec![
                    json!({"type": "Split", "pattern": {"Regex": OPEN_CLIP_WORD_RE}, "behavior": "Removed", "invert": true}),
                    byte_level,
                ],
            ),
        };
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens,
            "normalizer": normalizer,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": pre_tokenizers,
            },
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": BOS_TOKEN, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": EOS_TOKEN, "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": BOS_TOKEN, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": EOS_TOKEN, "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                    {"SpecialToken": {"id": EOS_TOKEN, "type_id": 1}},
                ],
                "special_tokens": {BOS_TOKEN: special(BOS_TOKEN), EOS_TOKEN: special(EOS_TOKEN)},
            },
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": EOS_TOKEN,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "</w>",
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": self.vocab,
                "merges": merges,
            },
        })
        .to_string()
    }
}
