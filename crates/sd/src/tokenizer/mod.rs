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
//! [`ClipTokenizer::encode`] returns `[BOS, tokens…, EOS, PAD, …]`, exactly [`MAX_LENGTH`] = 77
//! ids; a prompt of more than 75 tokens keeps its first 75 and EOS sits at index 76. SD 2.x pads
//! with `"!"` (id 0, [`PAD_ID`]); SD 1.x pads with EOS. Which tokens a prompt gives depends on
//! the [`TextPipeline`] in front of the BPE:
//!
//! - [`TextPipeline::OpenClip`] (the default): open_clip's `SimpleTokenizer` (`clean="lower"`),
//!   the tokenizer SD 2.x was trained with (Stability's `FrozenOpenCLIPEmbedder` calls
//!   `open_clip.tokenize`). Reference: `tests/cases/tokenizer/sd21-open-clip.json` from
//!   `tools/gen_open_clip_tokenizer_cases.py` (open_clip_torch 3.2.0, ftfy 6.3.1).
//!   1. Cleaning (`tokenizer/clean.rs`): ftfy's `fix_text` without its mojibake repair, `html.unescape`
//!      twice, whitespace runs → one space, Unicode lower case.
//!   2. open_clip's word regex `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|`
//!      `[\p{N}]|[^\s\p{L}\p{N}]+`: a run of CJK characters is one word (`"東京の夜景"`: 8 tokens,
//!      not the 5 per-character words of transformers 4), `"!!!"` is one word like any
//!      punctuation run, and the word `<start_of_text>` / `<end_of_text>` is the special id.
//! - [`TextPipeline::TransformersSlow`]: what diffusers fed SD 2.1 with transformers 4's (slow,
//!   Python) `CLIPTokenizer` on the model's `tokenizer/` folder, without the optional `ftfy`
//!   package: `CLIPTokenizer(prompt, padding="max_length", max_length=77,
//!   truncation=True).input_ids`. Reference: `tests/cases/tokenizer/sd21.json` from
//!   `tools/gen_tokenizer_cases.py` (transformers 4.57.1). Step by step:
//!   1. The special tokens are split off the raw text first, case-sensitively: the pad token
//!      `"!"` (so every `!` becomes id 0, never `!</w>` = 256 or a merge such as `!!`),
//!      `<|startoftext|>` and `<|endoftext|>`. Other spellings of the latter two
//!      (`<|EndOfText|>`) become the special id too where CLIP's regex reads them as one word
//!      (not after punctuation).
//!   2. Normalization (transformers' `BasicTokenizer(strip_accents=False,
//!      do_split_on_punc=False)`, the `ftfy` stand-in): `\t`, `\n`, `\r`, space separators,
//!      line and paragraph separators → one space; other control, format, private-use and
//!      unassigned characters and U+FFFD are removed; NFC; Unicode lower case (with Greek final
//!      sigma, as Python's `str.lower`).
//!   3. Pre-tokenization: every CJK ideograph is a word of its own (`BasicTokenizer`'s
//!      `_tokenize_chinese_chars`); then CLIP's regex
//!      `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!      (case-insensitive; whitespace is dropped).
//!
//! Both then map each word's UTF-8 bytes to the byte-level characters, run BPE with the suffix
//! `</w>` on the last character of each word (merges applied by rank), add BOS and EOS, and
//! truncate and pad to 77 as above. The two agree on plain prompts (letters, digits, spaces and
//! punctuation other than `!`); transformers 5's tokenizer agrees with open_clip on CJK text.
//!
//! [`tokenizer_json`] / [`ClipTokenizer::to_json`] give the equivalent self-contained
//! `tokenizer.json` (truncation and padding included), loadable by any `tokenizers` binding;
//! for [`TextPipeline::OpenClip`] it expects text already cleaned by [`ClipTokenizer::clean`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;
use tokenizers::{
    Model, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

mod clean;
mod vocab;

use vocab::{OPEN_CLIP_BOS_TOKEN, OPEN_CLIP_EOS_TOKEN, Vocabulary};

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
static CLIP_MERGES_GZ: &[u8] =
    include_bytes!("../../../../assets/clip/bpe_simple_vocab_16e6.txt.gz");
/// The name errors give the embedded merge list.
const EMBEDDED_NAME: &str = "assets/clip/bpe_simple_vocab_16e6.txt.gz (embedded)";

/// The text pipeline in front of CLIP's BPE: which reference tokenizer
/// [`ClipTokenizer::encode`] reproduces (see the [module documentation](self)).
/// In config files: `tokenizer = "open_clip"` or `"transformers-slow"` (the [`FromStr`] names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TextPipeline {
    /// open_clip's `SimpleTokenizer` (`clean="lower"`), what SD 2.x was trained with.
    #[default]
    #[serde(rename = "open_clip", alias = "open-clip", alias = "openclip")]
    OpenClip,
    /// transformers 4's slow `CLIPTokenizer` without `ftfy`, what diffusers used with
    /// transformers < 5 (kept for parity with such runs).
    #[serde(
        rename = "transformers-slow",
        alias = "transformers_slow",
        alias = "transformers"
    )]
    TransformersSlow,
}

impl TextPipeline {
    /// The name [`FromStr`] reads: `open_clip` or `transformers-slow`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenClip => "open_clip",
            Self::TransformersSlow => "transformers-slow",
        }
    }
}

impl std::fmt::Display for TextPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TextPipeline {
    type Err = String;

    /// `open_clip` (also `open-clip`, `openclip`) or `transformers-slow` (also
    /// `transformers_slow`, `transformers`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "open_clip" | "open-clip" | "openclip" => Ok(Self::OpenClip),
            "transformers-slow" | "transformers_slow" | "transformers" => {
                Ok(Self::TransformersSlow)
            }
            other => Err(format!(
                "unknown text pipeline {other:?}: expected open_clip or transformers-slow"
            )),
        }
    }
}

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

/// The SD 2.x CLIP tokenizer: prompt → 77 token ids. See the [module documentation](self).
///
/// Share one (`&self` methods, `Send + Sync`): building it parses 48 894 merges and a
/// vocabulary of 49 408 tokens, which takes a noticeable fraction of a second in debug builds.
#[derive(Clone)]
pub struct ClipTokenizer {
    /// Normalizer, pre-tokenizer, BPE and BOS/EOS post-processor; no truncation or padding.
    inner: Tokenizer,
    /// Which reference tokenizer this one reproduces.
    pipeline: TextPipeline,
    /// The vocabulary `inner` was built from (to rebuild it for another pipeline).
    vocab: Arc<Vocabulary>,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    pad_token: String,
    /// BPE ids of the words `<|startoftext|>` and `<|endoftext|>` (open_clip:
    /// `<start_of_text>`, `<end_of_text>`) with their special ids.
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
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl ClipTokenizer {
    /// The SD 2.x tokenizer from the embedded CLIP vocabulary (`assets/clip/`), with the
    /// default [`TextPipeline::OpenClip`] (as every constructor; see
    /// [`Self::with_text_pipeline`]).
    pub fn new() -> Result<Self, TokenizerError> {
        Self::build(
            Vocabulary::from_merges_gz(CLIP_MERGES_GZ, Path::new(EMBEDDED_NAME))?,
            TextPipeline::default(),
        )
    }

    /// The same vocabulary behind another text pipeline.
    ///
    /// # Errors
    /// [`TokenizerError::Build`] if the `tokenizers` crate rejects the rebuilt tokenizer.
    pub fn with_text_pipeline(self, pipeline: TextPipeline) -> Result<Self, TokenizerError> {
        if pipeline == self.pipeline {
            return Ok(self);
        }
        Self::build_shared(self.vocab, pipeline)
    }

    /// The text pipeline this tokenizer reproduces.
    pub fn text_pipeline(&self) -> TextPipeline {
        self.pipeline
    }

    /// The text the BPE stage sees for `prompt` under [`TextPipeline::OpenClip`]: open_clip's
    /// cleaning (ftfy's fixes, HTML entities, whitespace, lower case; module `clean`). Under
    /// [`TextPipeline::TransformersSlow`] the prompt unchanged (its normalizer is part of
    /// [`Self::to_json`]).
    pub fn clean<'a>(&self, prompt: &'a str) -> std::borrow::Cow<'a, str> {
        match self.pipeline {
            TextPipeline::OpenClip => std::borrow::Cow::Owned(clean::open_clip_clean(prompt)),
            TextPipeline::TransformersSlow => std::borrow::Cow::Borrowed(prompt),
        }
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
        Self::build(vocab, TextPipeline::default())
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
        Self::build(
            Vocabulary::from_tokenizer_dir(&dir)?,
            TextPipeline::default(),
        )
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
    fn build(vocab: Vocabulary, pipeline: TextPipeline) -> Result<Self, TokenizerError> {
        Self::build_shared(Arc::new(vocab), pipeline)
    }

    fn build_shared(
        vocab: Arc<Vocabulary>,
        pipeline: TextPipeline,
    ) -> Result<Self, TokenizerError> {
        let build_err = |message: String| TokenizerError::Build {
            path: vocab.source.clone(),
            message,
        };
        let inner =
            Tokenizer::from_str(&vocab.to_json(pipeline)).map_err(|e| build_err(e.to_string()))?;
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
        let spellings = match pipeline {
            TextPipeline::TransformersSlow => [BOS_TOKEN, EOS_TOKEN],
            TextPipeline::OpenClip => [OPEN_CLIP_BOS_TOKEN, OPEN_CLIP_EOS_TOKEN],
        };
        for (token, special_id) in spellings.into_iter().zip([bos_id, eos_id]) {
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
            pipeline,
            vocab,
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
    /// no mapping of non-literal special-token spellings (see [`Self::to_json`]); for
    /// [`TextPipeline::OpenClip`] it expects text cleaned by [`Self::clean`].
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
            .encode(self.clean(prompt).as_ref(), true)
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
        let cleaned: Vec<String> = inputs.iter().map(|p| self.clean(p).into_owned()).collect();
        let encodings =
            self.inner
                .encode_batch(cleaned, true)
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
    /// for the special tokens spelt as words (`<|EndOfText|>`; open_clip's `<end_of_text>`),
    /// which it leaves as BPE pieces. For [`TextPipeline::OpenClip`] pass it
    /// [`Self::clean`]`(prompt)`: open_clip's cleaning is not expressible as `tokenizers`
    /// normalizers.
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

    fn slow() -> &'static ClipTokenizer {
        static T: std::sync::OnceLock<ClipTokenizer> = std::sync::OnceLock::new();
        T.get_or_init(|| {
            tok()
                .clone()
                .with_text_pipeline(TextPipeline::TransformersSlow)
                .expect("slow pipeline")
        })
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

    // Expected ids from open_clip 3.2.0's SimpleTokenizer (ftfy 6.3.1).
    #[test]
    fn known_prompts_open_clip() {
        let t = tok();
        assert_eq!(t.text_pipeline(), TextPipeline::OpenClip);
        assert_eq!(
            t.encode("a photo of a cat").unwrap(),
            padded(&[49406, 320, 1125, 539, 320, 2368, 49407])
        );
        assert_eq!(
            t.encode("東京の夜景").unwrap(),
            padded(&[
                49406, 48338, 21078, 105, 21575, 23170, 250, 48132, 363, 49407
            ])
        );
        assert_eq!(
            t.encode("wow!!! really?!").unwrap(),
            padded(&[49406, 2781, 995, 1414, 2835, 49407])
        );
        assert_eq!(
            t.encode("<START_OF_TEXT> hi").unwrap(),
            padded(&[49406, 49406, 1883, 49407])
        );
        assert_eq!(t.encode("").unwrap(), padded(&[49406, 49407]));
    }

    // Expected ids from transformers 4.57.1's slow CLIPTokenizer on the SD 2.1 tokenizer folder.
    #[test]
    fn known_prompts() {
        let t = slow();
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
        for t in [tok(), slow()] {
            let json = t.to_json(false).unwrap();
            let plain = Tokenizer::from_str(&json).unwrap();
            for p in [
                "a photo of a cat",
                "wow!!! ΟΔΟΣ 日本語 café",
                &"word ".repeat(80),
            ] {
                let cleaned = t.clean(p);
                let ids = plain
                    .encode(cleaned.as_ref(), true)
                    .unwrap()
                    .get_ids()
                    .to_vec();
                assert_eq!(ids, t.encode(p).unwrap(), "{:?} {p:?}", t.text_pipeline());
            }
        }
    }

    #[test]
    fn text_pipeline_names() {
        for p in [TextPipeline::OpenClip, TextPipeline::TransformersSlow] {
            assert_eq!(p.name().parse::<TextPipeline>(), Ok(p));
        }
        assert!("sentencepiece".parse::<TextPipeline>().is_err());
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
            for t in [t, slow()] {
                let ids = t.encode(&s).unwrap();
                assert_eq!(ids.len(), MAX_LENGTH, "{s:?}");
                assert_eq!(ids[0], BOS_ID, "{s:?}");
                assert!(ids.contains(&EOS_ID), "{s:?}");
                assert!(ids.iter().all(|&id| (id as usize) < VOCAB_SIZE), "{s:?}");
            }
        }
        let specials = "<|startoftext|><|endoftext|>".repeat(50);
        assert_eq!(t.encode(&specials).unwrap()[76], EOS_ID);
        assert_eq!(slow().encode(&specials).unwrap()[76], EOS_ID);
    }
}
