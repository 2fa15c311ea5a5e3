//! open_clip's text cleaning, the first stage of [`TextPipeline::OpenClip`](super::TextPipeline).
//!
//! open_clip's `SimpleTokenizer` (`open_clip/tokenizer.py`, `clean="lower"`, the tokenizer
//! SD 2.x's `FrozenOpenCLIPEmbedder` calls) cleans a prompt as
//! `whitespace_clean(basic_clean(text)).lower()`:
//!
//! 1. `ftfy.fix_text` (ftfy 6.3, default settings), per line (segments end after each `\n`),
//!    each segment repeated until nothing changes: HTML entities that end in `;` (only while no
//!    segment so far contained `<`), C1 controls read as Windows-1252, Latin ligatures split,
//!    half/full-width forms made standard width, curly quotes straightened, line breaks made
//!    `\n`, terminal escape sequences and unwanted control characters removed, NFC.
//! 2. Python's `html.unescape`, twice (HTML5 named references, with or without `;`, and
//!    numeric ones with Python's rules for invalid code points).
//! 3. Python's `str.strip` and `" ".join(text.split())`: runs of whitespace become one space.
//! 4. Python's `str.lower` (Unicode lower case, capital sigma at the end of a word → `ς`).
//!
//! Not reproduced: ftfy's mojibake repair (`fix_encoding`: text such as `"cafÃ©"` that was
//! decoded with the wrong codec is tokenized as written, not repaired to `"café"`), and its
//! split of segments longer than a million characters. Characters newer than the Unicode
//! version of the reference's Python take this crate's (newer) Unicode tables.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

/// ftfy's `HTML_ENTITY_RE`: the references ftfy decodes (ending in `;`, at most 24 name chars).
static FTFY_ENTITY_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("valid regex"));
/// Python `html._charref`: numeric references (`;` optional) and names of up to 32 characters.
static PY_CHARREF_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").expect("valid regex")
});
/// ftfy's `ANSI_RE`: terminal escape sequences (`ESC [ digits/; letter`; `\d` is Unicode Nd).
static ANSI_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1B\[(?:\d|;)*[a-zA-Z]").expect("valid regex"));

/// Cleans a prompt as open_clip's `SimpleTokenizer` does before its word regex (module docs).
pub(crate) fn open_clip_clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    let words: Vec<&str> = unescaped
        .split(is_python_space)
        .filter(|w| !w.is_empty())
        .collect();
    // Rust's `to_lowercase` applies Unicode's Final_Sigma rule as Python's `str.lower` does.
    // U+0345 (combining ypogegrammeni, Mn) case-folds to ι: under the word regex's
    // IGNORECASE, Python's `regex` puts it in neither `[\p{L}]+` nor `[^\s\p{L}\p{N}]+`, so
    // `findall` skips it and it ends the word around it. A space does the same here.
    words.join(" ").to_lowercase().replace('\u{345}', " ")
}

/// Python's `str.isspace`: Unicode White_Space plus the separators U+001C ..= U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// `ftfy.fix_text` with its default settings, mojibake repair excepted (module docs).
fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        // ftfy's `unescape_html="auto"`: off from the first segment that looks like HTML on.
        if segment.contains('<') {
            unescape = false;
        }
        let mut fixed = segment.to_string();
        loop {
            let before = fixed.clone();
            if unescape {
                fixed = ftfy_unescape_html(&fixed);
            }
            fixed = fixed.chars().map(c1_as_windows_1252).collect();
            fixed = split_latin_ligatures(&fixed);
            fixed = fixed.chars().flat_map(standard_width).collect();
            fixed = fixed.chars().map(uncurl_quote).collect();
            fixed = fixed
                .replace("\r\n", "\n")
                .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
            fixed = ANSI_RE.replace_all(&fixed, "").into_owned();
            fixed.retain(|c| !is_unwanted_control(c));
            fixed = fixed.nfc().collect();
            if fixed == before {
                break;
            }
        }
        out.push_str(&fixed);
    }
    out
}

/// The 32 C1 control characters read as the Windows-1252 bytes they are (the five bytes that
/// code page leaves undefined keep their Latin-1 meaning), as ftfy's `fix_c1_controls` and
/// Python's `html._invalid_charrefs` read them.
fn c1_as_windows_1252(c: char) -> char {
    const TABLE: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match c {
        '\u{80}'..='\u{9F}' => TABLE[c as usize - 0x80],
        _ => c,
    }
}

/// ftfy's `fix_latin_ligatures`: Latin typographic ligatures and legacy digraphs split.
fn split_latin_ligatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let split = match c {
            'Ĳ' => "IJ",
            'ĳ' => "ij",
            'ŉ' => "ʼn",
            'Ǳ' => "DZ",
            'ǲ' => "Dz",
            'ǳ' => "dz",
            'Ǆ' => "DŽ",
            'ǅ' => "Dž",
            'ǆ' => "dž",
            'Ǉ' => "LJ",
            'ǈ' => "Lj",
            'ǉ' => "lj",
            'Ǌ' => "NJ",
            'ǋ' => "Nj",
            'ǌ' => "nj",
            'ﬀ' => "ff",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ﬃ' => "ffi",
            'ﬄ' => "ffl",
            'ﬅ' => "ſt",
            'ﬆ' => "st",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(split);
    }
    out
}

/// ftfy's `fix_character_width`: U+3000 → space, and the halfwidth and fullwidth forms
/// (U+FF01 ..= U+FFEF) → their NFKC equivalents.
fn standard_width(c: char) -> Vec<char> {
    match c {
        '\u{3000}' => vec![' '],
        '\u{FF01}'..='\u{FFEF}' => std::iter::once(c).nfkc().collect(),
        _ => vec![c],
    }
}

/// ftfy's `uncurl_quotes`: U+02BC and U+2018 ..= U+201B → `'`, U+201C ..= U+201F → `"`.
fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
        '\u{201C}'..='\u{201F}' => '"',
        _ => c,
    }
}

/// ftfy's `remove_control_chars`: C0 controls other than `\t \n \x0C \r`, DEL, the deprecated
/// format characters U+206A ..= U+206F, the byte order mark and U+FFF9 ..= U+FFFC.
fn is_unwanted_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{E}'..='\u{1F}' | '\u{7F}' | '\u{206A}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}')
}

/// An HTML5 named reference (`name` without `&`, with or without its `;`), if it is one.
fn named_reference(name: &str) -> Option<&'static str> {
    let key = format!("&{name}");
    htmlize::ENTITIES
        .get(key.as_bytes())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// ftfy's `unescape_html`: each `&…;` that is an HTML5 name ending in `;`, or the upper-case
/// spelling of an all-lower-case one that no other reference claims (decoded upper-cased), or
/// a numeric reference that Python's `html.unescape` decodes whole.
fn ftfy_unescape_html(text: &str) -> String {
    FTFY_ENTITY_RE
        .replace_all(text, |caps: &Captures<'_>| {
            let matched = &caps[0];
            let name = &matched[1..];
            if let Some(value) = named_reference(name) {
                return value.to_string();
            }
            if let Some(value) = upper_case_reference(name) {
                return value;
            }
            if matched.starts_with("&#") {
                let decoded = html_unescape(matched);
                if !decoded.contains(';') {
                    return decoded;
                }
            }
            matched.to_string()
        })
        .into_owned()
}

/// ftfy's upper-case references (`&NTILDE;` → `Ñ`): `name` (with `;`) is the upper case of an
/// all-lower-case HTML5 name, and Python's `html.unescape` leaves `&name` unchanged.
fn upper_case_reference(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    if lower == name || lower.to_uppercase() != name {
        return None;
    }
    let value = named_reference(&lower)?;
    let whole = format!("&{name}");
    (html_unescape(&whole) == whole).then(|| value.to_uppercase())
}

/// Python's `html.unescape`: named references (the longest known prefix of up to 32
/// characters, `;` optional where HTML5 allows) and numeric ones, invalid code points as Python
/// maps them (NUL and surrogates → U+FFFD, C1 → Windows-1252, other controls and noncharacters
/// removed).
pub(crate) fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    PY_CHARREF_RE
        .replace_all(text, |caps: &Captures<'_>| {
            let reference = &caps[1];
            if let Some(number) = reference.strip_prefix('#') {
                let number = number.trim_end_matches(';');
                let (digits, radix) = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => (hex, 16),
                    None => (number, 10),
                };
                // Saturate: any value above U+10FFFF decodes the same (U+FFFD).
                let value = u32::from_str_radix(digits, radix).unwrap_or(u32::MAX);
                return numeric_reference(value);
            }
            if let Some(value) = named_reference(reference) {
                return value.to_string();
            }
            let chars: Vec<(usize, char)> = reference.char_indices().collect();
            for len in (2..chars.len()).rev() {
                let (cut, _) = chars[len];
                if let Some(value) = named_reference(&reference[..cut]) {
                    return format!("{value}{}", &reference[cut..]);
                }
            }
            format!("&{reference}")
        })
        .into_owned()
}

/// Python `html._replace_charref` for a numeric reference.
fn numeric_reference(value: u32) -> String {
    match value {
        0 => "\u{FFFD}".to_string(),
        0x0D => "\r".to_string(),
        0x80..=0x9F => c1_as_windows_1252(char::from_u32(value).unwrap_or('\u{FFFD}')).to_string(),
        0xD800..=0xDFFF | 0x11_0000.. => "\u{FFFD}".to_string(),
        0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        v if v & 0xFFFE == 0xFFFE => String::new(),
        v => char::from_u32(v).map(String::from).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings: ftfy 6.3.1 `fix_text` and Python 3.11's `html.unescape` / open_clip
    // 3.2.0's `_clean_lower` on the same input.
    #[test]
    fn matches_python_on_known_strings() {
        assert_eq!(
            open_clip_clean("  A  Photo\tOf\n a CAT "),
            "a photo of a cat"
        );
        assert_eq!(open_clip_clean("\u{85}x\u{80}"), "…x€");
        assert_eq!(open_clip_clean("ΟΔΟΣ ΣΟΦΙΑΣ"), "οδος σοφιας");
        assert_eq!(open_clip_clean("P&EACUTE;REZ &nTILDE;"), "pérez &ntilde;");
        assert_eq!(open_clip_clean("&amp;amp; x"), "& x");
        assert_eq!(
            html_unescape("&copy 2024 &notit; &#x80; &#0; &#1;"),
            "© 2024 ¬it; € \u{FFFD} "
        );
        assert_eq!(open_clip_clean("“ﬁne” ＡＢＣ\u{3000}x"), "\"fine\" abc x");
        assert_eq!(open_clip_clean("\u{1B}[31mred\u{1B}[0m"), "red");
        // U+0345 splits words (the word regex skips it); see `open_clip_clean`.
        assert_eq!(open_clip_clean("a\u{345}b"), "a b");
    }
}
