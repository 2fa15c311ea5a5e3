//! CLIP byte-pair-encoding tokenizer of Stable Diffusion 2.x, through the `tokenizers` crate.
//!
//! The vocabulary is OpenAI CLIP's (`bpe_simple_vocab_16e6.txt.gz`, MIT, shipped in
//! `assets/clip/` and embedded in the binary), laid out as CLIP's `simple_tokenizer.py` does:
//!
//! | ids | tokens |
//! | --- | --- |
//! | 0 ..= 255 | the 256 byte-level characters (GPT-2's `bytes_to_unicode`, in its order; `"!"` is 0) |
//! | 256 ..= 511 | the same with `</w>` (end of word) appended |
//! | 512 ..= 49405 | one per merge, the first 48 894 merges of the file (lines 2 ..= 48 895) |
//! | 49406, 49407 | `<|startoftext|>` ([`BOS_ID`]), `<|endoftext|>` ([`EOS_ID`]) |
//!
//! [`ClipTokenizer::encode`] returns what diffusers feeds SD 2.1's text encoder:
//! `CLIPTokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids` with
//! transformers' (slow, Python) `CLIPTokenizer` on the model's `tokenizer/` folder, without the
//! optional `ftfy` package. That is `[BOS, tokens…, EOS, PAD, …]`, exactly [`MAX_LENGTH`] = 77
//! ids; a prompt of more than 75 tokens keeps its first 75 and EOS sits at index 76. SD 2.x pads
//! with `"!"` (id 0, [`PAD_ID`]); SD 1.x pads with EOS.
//!
//! The text pipeline reproduces the slow tokenizer step by step:
//!
//! 1. The special tokens are split off the raw text first, case-sensitively: the pad token `"!"`
//!    (so every `!` becomes id 0, never `!</w>` = 256 or a merge such as `!!`), `<|startoftext|>`
//!    and `<|endoftext|>`. Other spellings of the latter two (`<|EndOfText|>`) become the
//!    special id too where CLIP's regex reads them as one word (not after punctuation).
//! 2. Normalization (transformers' `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`,
//!    the `ftfy` stand-in): `\t`, `\n`, `\r`, space separators, line and paragraph separators →
//!    one space; other control, format, private-use and unassigned characters and U+FFFD are
//!    removed; NFC; Unicode lower case (with Greek final sigma, as Python's `str.lower`).
//! 3. Pre-tokenization: every CJK ideograph is a word of its own (`BasicTokenizer`'s
//!    `_tokenize_chinese_chars`); then CLIP's regex
//!    `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!    (case-insensitive; whitespace is dropped); then each word's UTF-8 bytes are mapped to the
//!    byte-level characters.
//! 4. BPE with the suffix `</w>` on the last character of each word, merges applied by rank.
//! 5. Post-processing adds BOS and EOS; truncation and padding to 77 as above.
//!
//! [`tokenizer_json`] / [`ClipTokenizer::to_json`] give the equivalent self-contained
//! `tokenizer.json` (truncation and padding included), loadable by any `tokenizers` binding.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value, json};
use thiserror::Error;
use tokenizers::{
    Model, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// Id of `<|startoftext|>` (beginning of sequence) in the CLIP vocabulary.
pub const BOS_ID: u32 = 49406;
/// Id of `<|endoftext|>` (end of sequence; also the unknown token) in the CLIP vocabulary.
pub const EOS_ID: u32 = 49407;
/// Id of SD 2.x's pad token `"!"` (the first byte-level character, without `</w>`).
pub const PAD_ID: u32 = 0;
/// Length of every encoded prompt: the CLIP text encoder's 77 positions.
pub const MAX_LENGTH: usize = 77;
/// Number of tokens in the CLIP vocabulary: 256 + 256 + 48 894 merges + 2 special tokens.
pub const VOCAB_SIZE: usize = 49408;
/// The beginning-of-sequence token.
pub const BOS_TOKEN: &str = "<|startoftext|>";
/// The end-of-sequence token.
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// SD 2.x's pad token (`special_tokens_map.json` of the SD 2.x model folders).
pub const PAD_TOKEN: &str = "!";

/// Number of merges CLIP uses: `49152 - 256 - 2` (lines `1 ..= 48894` after the header line).
const NUM_MERGES: usize = 49152 - 256 - 2;

/// `assets/clip/bpe_simple_vocab_16e6.txt.gz`, the CLIP merge list (MIT, OpenAI).
static CLIP_MERGES_GZ: &[u8] = include_bytes!("../../../assets/clip/bpe_simple_vocab_16e6.txt.gz");
/// The name errors give the embedded merge list.
const EMBEDDED_NAME: &str = "assets/clip/bpe_simple_vocab_16e6.txt.gz (embedded)";

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

/// Errors of building the tokenizer or encoding a prompt. File errors name the file.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// A vocabulary file could not be read (or decompressed).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A vocabulary file was read but its content is not what CLIP's tokenizer expects.
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The `tokenizers` crate rejected the `tokenizer.json` built from `path`.
    #[error("{}: the tokenizers crate rejected the tokenizer built from it: {message}", path.display())]
    Build {
        /// The vocabulary the tokenizer was built from.
        path: PathBuf,
        /// The `tokenizers` error.
        message: String,
    },
    /// The `tokenizers` crate failed on a prompt.
    #[error("tokenizing {prompt:?}: {message}")]
    Encode {
        /// The prompt.
        prompt: String,
        /// The `tokenizers` error.
        message: String,
    },
}

/// One encoded prompt: the 77 ids and how many tokens truncation dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Exactly [`MAX_LENGTH`] ids: BOS, the prompt's tokens, EOS, then the pad id.
    pub ids: Vec<u32>,
    /// Number of prompt tokens that did not fit (0 when the prompt has at most 75 tokens).
    pub dropped: usize,
}

/// A vocabulary and merge list in CLIP's layout, plus where it came from.
struct Vocabulary {
    /// Token → id.
    vocab: Map<String, Value>,
    /// Merges in rank order.
    merges: Vec<(String, String)>,
    /// The pad token (must be in `vocab`).
    pad: String,
    /// The file errors name.
    source: PathBuf,
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
    fn from_merges_text(text: &str, path: &Path) -> Result<Self, TokenizerError> {
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
    fn from_merges_gz(gz: &[u8], path: &Path) -> Result<Self, TokenizerError> {
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
    fn from_tokenizer_dir(dir: &Path) -> Result<Self, TokenizerError> {
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

    /// The `tokenizer.json` text (without truncation and padding, which
    /// [`ClipTokenizer::to_json`] adds through the `tokenizers` API).
    fn to_json(&self) -> String {
        // The slow tokenizer splits its special tokens off the raw text, case-sensitively
        // (`normalized: false`); see `ClipTokenizer::special_pieces` for the other spellings.
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
        let mut added_tokens = vec![added(BOS_TOKEN), added(EOS_TOKEN)];
        if self.pad != BOS_TOKEN && self.pad != EOS_TOKEN {
            added_tokens.push(added(&self.pad));
        }
        let replace = |pattern: &str, content: &str| json!({"type": "Replace", "pattern": {"Regex": pattern}, "content": content});
        let special =
            |token: &str| json!({"id": token, "ids": [self.vocab[token]], "tokens": [token]});
        let merges: Vec<Value> = self.merges.iter().map(|(a, b)| json!([a, b])).collect();
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens,
            "normalizer": {
                "type": "Sequence",
                "normalizers": [
                    replace(WHITESPACE_RE, " "),
                    replace(REMOVED_RE, ""),
                    {"type": "NFC"},
                    replace(FINAL_SIGMA_RE, "ς"),
                    {"type": "Lowercase"},
                ],
            },
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": CJK_RE}, "behavior": "Isolated", "invert": false},
                    {"type": "Split", "pattern": {"Regex": CLIP_WORD_RE}, "behavior": "Removed", "invert": true},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
                ],
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

/// The SD 2.x CLIP tokenizer: prompt → 77 token ids. See the [module documentation](self).
///
/// Share one (`&self` methods, `Send + Sync`): building it parses 48 894 merges and a
/// vocabulary of 49 408 tokens, which takes a noticeable fraction of a second in debug builds.
#[derive(Clone)]
pub struct ClipTokenizer {
    /// Normalizer, pre-tokenizer, BPE and BOS/EOS post-processor; no truncation or padding.
    inner: Tokenizer,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    pad_token: String,
    /// BPE ids of the words `<|startoftext|>` and `<|endoftext|>` with their special ids.
    special_pieces: Vec<(Vec<u32>, u32)>,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("pad_id", &self.pad_id)
            .field("pad_token", &self.pad_token)
            .finish()
    }
}

impl ClipTokenizer {
    /// The SD 2.x tokenizer from the embedded CLIP vocabulary (`assets/clip/`).
    pub fn new() -> Result<Self, TokenizerError> {
        Self::build(&Vocabulary::from_merges_gz(
            CLIP_MERGES_GZ,
            Path::new(EMBEDDED_NAME),
        )?)
    }

    /// The SD 2.x tokenizer from a CLIP merge list `bpe_simple_vocab_16e6.txt.gz` (gzip) or
    /// `bpe_simple_vocab_16e6.txt` (plain text; told apart by the gzip magic bytes).
    pub fn from_merges_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let vocab = if bytes.starts_with(&[0x1f, 0x8b]) {
            Vocabulary::from_merges_gz(&bytes, path)?
        } else {
            let text = String::from_utf8(bytes).map_err(|e| TokenizerError::Invalid {
                path: path.to_path_buf(),
                what: format!("neither gzip nor UTF-8 text: {e}"),
            })?;
            Vocabulary::from_merges_text(&text, path)?
        };
        Self::build(&vocab)
    }

    /// The tokenizer of a diffusers model folder: `dir/tokenizer/{vocab.json, merges.txt,
    /// special_tokens_map.json}`, or those files directly in `dir`. The pad token comes from
    /// `special_tokens_map.json` (`"!"` for SD 2.x, `<|endoftext|>` for SD 1.x; `"!"` when the
    /// file is absent). Only the first 48 894 merges are used, as transformers does.
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let sub = dir.join("tokenizer");
        let dir = if sub.join("vocab.json").is_file() {
            sub
        } else {
            dir.to_path_buf()
        };
        Self::build(&Vocabulary::from_tokenizer_dir(&dir)?)
    }

    /// The model folder's tokenizer when `dir/tokenizer/vocab.json` exists, else [`Self::new`].
    pub fn for_model_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        if dir.join("tokenizer").join("vocab.json").is_file() {
            Self::from_model_dir(dir)
        } else {
            Self::new()
        }
    }

    /// Loads the generated `tokenizer.json` and looks up the special ids.
    fn build(vocab: &Vocabulary) -> Result<Self, TokenizerError> {
        let build_err = |message: String| TokenizerError::Build {
            path: vocab.source.clone(),
            message,
        };
        let inner = Tokenizer::from_str(&vocab.to_json()).map_err(|e| build_err(e.to_string()))?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| build_err(format!("no id for {token:?}")))
        };
        let bos_id = id(BOS_TOKEN)?;
        let eos_id = id(EOS_TOKEN)?;
        // A special token that is not in the raw text literally but appears after normalization
        // (`<|EndOfText|>`, or with a zero-width space inside) is a word of CLIP's regex, which
        // the slow tokenizer's BPE cache maps to the special token, unless punctuation right
        // before it swallowed the `<|`. The BPE pieces of that word cannot come from any other
        // word (they mix punctuation and letters, and only the last ends in `</w>`), so
        // replacing them by the special id afterwards is exact.
        let mut special_pieces = vec![];
        for (token, special_id) in [(BOS_TOKEN, bos_id), (EOS_TOKEN, eos_id)] {
            let pieces = inner
                .get_model()
                .tokenize(token)
                .map_err(|e| build_err(format!("BPE of {token:?}: {e}")))?;
            let only_last_ends_word = pieces
                .iter()
                .enumerate()
                .all(|(i, p)| p.value.ends_with("</w>") == (i + 1 == pieces.len()));
            if pieces.len() > 1 && only_last_ends_word {
                special_pieces.push((pieces.iter().map(|p| p.id).collect(), special_id));
            }
        }
        Ok(Self {
            bos_id,
            eos_id,
            pad_id: id(&vocab.pad)?,
            pad_token: vocab.pad.clone(),
            special_pieces,
            inner,
        })
    }

    /// Id of `<|startoftext|>` ([`BOS_ID`] for the CLIP vocabulary).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Id of `<|endoftext|>` ([`EOS_ID`] for the CLIP vocabulary).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id of the pad token ([`PAD_ID`] = `"!"` for SD 2.x).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The pad token (`"!"` for SD 2.x).
    pub fn pad_token(&self) -> &str {
        &self.pad_token
    }

    /// Length of every encoding: [`MAX_LENGTH`] = 77.
    pub fn max_length(&self) -> usize {
        MAX_LENGTH
    }

    /// Number of tokens, special tokens included ([`VOCAB_SIZE`] = 49408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a vocabulary token (byte-level form, e.g. `"cat</w>"`), if any.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The `tokenizers` tokenizer underneath: BOS/EOS added, no truncation, no padding, and
    /// no mapping of non-literal special-token spellings (see [`Self::to_json`]).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Encodes one prompt into exactly [`MAX_LENGTH`] ids: `[BOS, tokens…, EOS, pad…]`, the
    /// tokens cut to the first 75. Any string is accepted (an empty one gives `[BOS, EOS, pad…]`).
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.encode_full(prompt)?.ids)
    }

    /// [`Self::encode`] plus the number of tokens truncation dropped.
    pub fn encode_full(&self, prompt: &str) -> Result<Encoded, TokenizerError> {
        let encoding = self
            .inner
            .encode(prompt, true)
            .map_err(|e| TokenizerError::Encode {
                prompt: prompt.to_string(),
                message: e.to_string(),
            })?;
        Ok(self.finish(encoding.get_ids()))
    }

    /// [`Self::encode`] for many prompts (in parallel); one `Vec` of 77 ids per prompt.
    pub fn encode_batch<S: AsRef<str>>(
        &self,
        prompts: &[S],
    ) -> Result<Vec<Vec<u32>>, TokenizerError> {
        let inputs: Vec<&str> = prompts.iter().map(AsRef::as_ref).collect();
        let encodings =
            self.inner
                .encode_batch(inputs.clone(), true)
                .map_err(|e| TokenizerError::Encode {
                    prompt: inputs.join(" | "),
                    message: e.to_string(),
                })?;
        Ok(encodings
            .iter()
            .map(|e| self.finish(e.get_ids()).ids)
            .collect())
    }

    /// How many of the prompt's tokens do not fit in 77 ids (0 when none), for a CLI warning.
    pub fn truncated_tokens(&self, prompt: &str) -> Result<usize, TokenizerError> {
        Ok(self.encode_full(prompt)?.dropped)
    }

    /// Truncates `[BOS, tokens…, EOS]` to 77 with EOS last, then pads.
    fn finish(&self, with_specials: &[u32]) -> Encoded {
        let mut ids = with_specials.to_vec();
        for (pieces, special_id) in &self.special_pieces {
            let mut i = 0;
            while i + pieces.len() <= ids.len() {
                if ids[i..i + pieces.len()] == pieces[..] {
                    ids.splice(i..i + pieces.len(), [*special_id]);
                }
                i += 1;
            }
        }
        let dropped = ids.len().saturating_sub(MAX_LENGTH);
        if dropped > 0 {
            ids.truncate(MAX_LENGTH - 1);
            ids.push(self.eos_id);
        }
        ids.resize(MAX_LENGTH, self.pad_id);
        Encoded { ids, dropped }
    }

    /// The equivalent self-contained `tokenizer.json` text: this tokenizer with truncation to
    /// 77 and padding to 77 with the pad token, as `tokenizers`' `Tokenizer::from_str` or
    /// Python's `Tokenizer.from_str` / `PreTrainedTokenizerFast(tokenizer_file=…)` load it.
    /// `encode(prompt, add_special_tokens=true)` on it gives the ids of [`Self::encode`], except
    /// for `<|startoftext|>` / `<|endoftext|>` spelt otherwise than literally (other case,
    /// removed characters inside), which it leaves as BPE pieces.
    pub fn to_json(&self, pretty: bool) -> Result<String, TokenizerError> {
        let err = |e: tokenizers::Error| TokenizerError::Build {
            path: PathBuf::from("tokenizer.json"),
            message: e.to_string(),
        };
        let mut full = self.inner.clone();
        full.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: MAX_LENGTH,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(err)?;
        full.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(MAX_LENGTH),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: self.pad_id,
            pad_type_id: 0,
            pad_token: self.pad_token.clone(),
        }));
        full.to_string(pretty).map_err(err)
    }
}

/// The `tokenizer.json` of the SD 2.x tokenizer built from the embedded CLIP vocabulary
/// (`ClipTokenizer::new()?.to_json(true)`), for a tool to save.
pub fn tokenizer_json() -> Result<String, TokenizerError> {
    ClipTokenizer::new()?.to_json(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> &'static ClipTokenizer {
        static T: std::sync::OnceLock<ClipTokenizer> = std::sync::OnceLock::new();
        T.get_or_init(|| ClipTokenizer::new().expect("embedded tokenizer"))
    }

    fn padded(ids: &[u32]) -> Vec<u32> {
        let mut v = ids.to_vec();
        v.resize(MAX_LENGTH, PAD_ID);
        v
    }

    #[test]
    fn vocabulary_layout() {
        let t = tok();
        assert_eq!(t.vocab_size(), VOCAB_SIZE);
        assert_eq!(t.bos_id(), BOS_ID);
        assert_eq!(t.eos_id(), EOS_ID);
        assert_eq!(t.pad_id(), PAD_ID);
        assert_eq!(t.token_to_id("!"), Some(0));
        assert_eq!(t.token_to_id("!</w>"), Some(256));
        assert_eq!(t.token_to_id("in"), Some(512));
        assert_eq!(t.token_to_id(BOS_TOKEN), Some(BOS_ID));
        assert_eq!(t.token_to_id(EOS_TOKEN), Some(EOS_ID));
        // Byte 0x00 is the first non-printable byte: U+0100, id 188.
        assert_eq!(t.token_to_id("\u{100}"), Some(188));
    }

    // Expected ids from transformers 4.57.1's slow CLIPTokenizer on the SD 2.1 tokenizer folder.
    #[test]
    fn known_prompts() {
        let t = tok();
        assert_eq!(
            t.encode("a photo of a cat").unwrap(),
            padded(&[49406, 320, 1125, 539, 320, 2368, 49407])
        );
        assert_eq!(
            t.encode("wow!!! really?!").unwrap(),
            padded(&[49406, 2781, 0, 0, 0, 1414, 286, 0, 49407])
        );
        assert_eq!(
            t.encode("it's don't we're").unwrap(),
            padded(&[49406, 585, 568, 847, 713, 649, 982, 49407])
        );
        assert_eq!(
            t.encode("日本語").unwrap(),
            padded(&[49406, 37156, 19277, 361, 34002, 508, 49407])
        );
        assert_eq!(
            t.encode("&amp; <|ENDOFTEXT|> x").unwrap(),
            padded(&[49406, 261, 6259, 282, 49407, 343, 49407])
        );
        assert_eq!(
            t.encode("A\u{0}B\u{200b}C\u{3000}x").unwrap(),
            padded(&[49406, 5334, 343, 49407])
        );
        assert_eq!(t.encode("").unwrap(), padded(&[49406, 49407]));
    }

    #[test]
    fn truncation_keeps_eos_last() {
        let t = tok();
        let long = "cat ".repeat(100);
        let e = t.encode_full(&long).unwrap();
        assert_eq!(e.ids.len(), MAX_LENGTH);
        assert_eq!(e.ids[0], BOS_ID);
        assert_eq!(e.ids[76], EOS_ID);
        assert_eq!(e.dropped, 25);
        let exact = "cat ".repeat(75);
        assert_eq!(t.truncated_tokens(&exact).unwrap(), 0);
        assert_eq!(t.encode(&exact).unwrap()[76], EOS_ID);
        assert_eq!(t.truncated_tokens(&"cat ".repeat(76)).unwrap(), 1);
    }

    #[test]
    fn batch_matches_single() {
        let t = tok();
        let prompts = ["a dog", "", "a DSLR photo of a squirrel!", &"x ".repeat(90)];
        let batch = t.encode_batch(&prompts).unwrap();
        for (p, ids) in prompts.iter().zip(&batch) {
            assert_eq!(&t.encode(p).unwrap(), ids, "{p:?}");
        }
    }

    #[test]
    fn exported_json_is_equivalent() {
        let t = tok();
        let json = t.to_json(false).unwrap();
        let plain = Tokenizer::from_str(&json).unwrap();
        for p in [
            "a photo of a cat",
            "wow!!! ΟΔΟΣ 日本語 café",
            &"word ".repeat(80),
        ] {
            let ids = plain.encode(p, true).unwrap().get_ids().to_vec();
            assert_eq!(ids, t.encode(p).unwrap(), "{p:?}");
        }
    }

    #[test]
    fn merges_file_constructor_matches_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/clip");
        let gz = ClipTokenizer::from_merges_file(dir.join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
        assert_eq!(
            gz.encode("an astronaut riding a horse").unwrap(),
            tok().encode("an astronaut riding a horse").unwrap()
        );
        let missing = ClipTokenizer::from_merges_file(dir.join("missing.gz")).unwrap_err();
        assert!(missing.to_string().contains("missing.gz"), "{missing}");
        let bad = ClipTokenizer::from_merges_file(dir.join("README.md")).unwrap_err();
        assert!(bad.to_string().contains("README.md"), "{bad}");
    }

    /// No input string panics, and every encoding has 77 ids with BOS first and EOS present.
    #[test]
    fn arbitrary_strings() {
        let t = tok();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pools: [&[u32]; 4] = [
            &[
                0x20, 0x21, 0x27, 0x73, 0x3a3, 0x391, 0x301, 0x200d, 0x9, 0xa, 0xfffd, 0x0, 0x3c,
                0x7c,
            ],
            &[0x41, 0x5a, 0x61, 0x7a, 0x30, 0x39, 0x2e, 0x2d],
            &[
                0x4e00, 0xf900, 0x1f600, 0x10ffff, 0xe000, 0x2028, 0x85, 0xad,
            ],
            &[0x130, 0x1c5, 0xfb01, 0x212a, 0x17f, 0x3c2, 0x345],
        ];
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let s: String = (0..len)
                .filter_map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        char::from_u32((r >> 8) as u32 % 0x11_0000)
                    } else {
                        let pool = pools[(r >> 4) as usize % pools.len()];
                        char::from_u32(pool[(r >> 12) as usize % pool.len()])
                    }
                })
                .collect();
            let ids = t.encode(&s).unwrap();
            assert_eq!(ids.len(), MAX_LENGTH, "{s:?}");
            assert_eq!(ids[0], BOS_ID, "{s:?}");
            assert!(ids.contains(&EOS_ID), "{s:?}");
            assert!(ids.iter().all(|&id| (id as usize) < VOCAB_SIZE), "{s:?}");
        }
        let specials = "<|startoftext|><|endoftext|>".repeat(50);
        assert_eq!(t.encode(&specials).unwrap()[76], EOS_ID);
    }
}
