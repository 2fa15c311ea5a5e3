//! The PLY header, read and checked before any body byte is parsed.

use std::io::{BufRead, Read};

/// The longest header [`read_header`] reads before giving up on finding `end_header`.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// A PLY body encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `format ascii 1.0`.
    Ascii,
    /// `format binary_little_endian 1.0`.
    BinaryLittleEndian,
    /// `format binary_big_endian 1.0`.
    BinaryBigEndian,
}

/// One `property` line: a scalar of `ty` (bytes `size`), or a list (`size` = `None`).
#[derive(Clone, Debug)]
pub(crate) struct PropertyLine {
    /// Property name.
    pub name: String,
    /// Scalar type name as written (`float`, `uchar`, `float32`, …); `list` for lists.
    pub ty: String,
    /// Bytes of one binary value; `None` for list properties.
    pub size: Option<u64>,
}

/// One `element` line with its properties.
#[derive(Clone, Debug)]
pub(crate) struct ElementLine {
    /// Element name (`vertex`, …).
    pub name: String,
    /// Declared count.
    pub count: u64,
    /// Properties in file order.
    pub properties: Vec<PropertyLine>,
}

impl ElementLine {
    /// Bytes of one binary record; `None` when the element has list properties.
    pub fn stride(&self) -> Option<u64> {
        self.properties.iter().map(|p| p.size).sum()
    }
}

/// A parsed PLY header.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    /// Body encoding.
    pub format: Format,
    /// Elements in file order.
    pub elements: Vec<ElementLine>,
    /// Bytes of the header, `end_header\n` included: the body starts here.
    pub len: u64,
    /// The up axis a `comment splatdream up <axis> from z` line declares (see
    /// [`super::UP_COMMENT`]); `None` when the file has no such line.
    pub up: Option<crate::transform::UpAxis>,
}

/// Bytes of one scalar PLY type, `None` for an unknown type name.
fn scalar_size(ty: &str) -> Option<u64> {
    Some(match ty {
        "char" | "uchar" | "int8" | "uint8" => 1,
        "short" | "ushort" | "int16" | "uint16" => 2,
        "int" | "uint" | "float" | "int32" | "uint32" | "float32" => 4,
        "double" | "float64" => 8,
        _ => return None,
    })
}

/// Read a PLY header from `reader` (left at the first body byte) and check it before any
/// parser sees the file: the `ply` magic, a known format, an `end_header` line, and — for binary
/// files whose elements have only scalar properties — that the declared element counts match
/// the `file_len − header` bytes that follow (so a truncated body, a wrong vertex count or an
/// absurd count such as 10^12 is reported as such, and nothing is allocated for it).
///
/// # Errors
/// The message of the first problem (the caller adds the file name).
pub(crate) fn read_header(reader: &mut impl BufRead, file_len: u64) -> Result<Header, String> {
    let mut header_len = 0u64;
    let mut line = Vec::new();
    let mut format = None;
    let mut elements: Vec<ElementLine> = vec![];
    let mut up = None;
    let mut n = 0usize;
    loop {
        line.clear();
        let got = reader
            .by_ref()
            .take(MAX_HEADER_BYTES.saturating_sub(header_len))
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading the header: {e}"))?;
        if got == 0 {
            return Err(if header_len == 0 {
                "the file is empty".into()
            } else {
                "the header has no `end_header` line".into()
            });
        }
        header_len += got as u64;
        n += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let words: Vec<&str> = text.split_whitespace().collect();
        if n == 1 {
            if text != "ply" {
                return Err(format!(
                    "the first line is `{}`, expected the `ply` magic",
                    text.chars().take(40).collect::<String>()
                ));
            }
            continue;
        }
        match words.as_slice() {
            ["end_header"] => break,
            ["comment", "splatdream", "up", axis, "from", "z"] => {
                up = Some(axis.parse().map_err(|e| format!("header line {n}: {e}"))?);
            }
            ["format", f, ..] => {
                format = Some(match *f {
                    "ascii" => Format::Ascii,
                    "binary_little_endian" => Format::BinaryLittleEndian,
                    "binary_big_endian" => Format::BinaryBigEndian,
                    other => {
                        return Err(format!(
                            "header line {n}: unknown format `{other}` (expected ascii, \
                             binary_little_endian or binary_big_endian)"
                        ));
                    }
                })
            }
            ["element", name, count] => {
                let count = count.parse::<u64>().map_err(|_| {
                    format!("header line {n}: element `{name}`: count `{count}` is not a number")
                })?;
                elements.push(ElementLine {
                    name: name.to_string(),
                    count,
                    properties: vec![],
                });
            }
            ["property", "list", .., name] => {
                if let Some(e) = elements.last_mut() {
                    e.properties.push(PropertyLine {
                        name: name.to_string(),
                        ty: "list".into(),
                        size: None,
                    });
                }
            }
            ["property", ty, name] => {
                let size = scalar_size(ty).ok_or_else(|| {
                    format!("header line {n}: property `{name}` has unknown type `{ty}`")
                })?;
                if let Some(e) = elements.last_mut() {
                    e.properties.push(PropertyLine {
                        name: name.to_string(),
                        ty: ty.to_string(),
                        size: Some(size),
                    });
                }
            }
            _ => {}
        }
        if header_len >= MAX_HEADER_BYTES {
            return Err(format!(
                "no `end_header` line in the first {MAX_HEADER_BYTES} bytes"
            ));
        }
    }
    let header = Header {
        // A header without a format line is left to the parser's own message.
        format: format.unwrap_or(Format::Ascii),
        elements,
        len: header_len,
        up,
    };
    if header.format != Format::Ascii {
        check_binary_sizes(&header, file_len)?;
    }
    Ok(header)
}

/// For a binary body whose elements have only scalar properties: the declared counts must
/// account for exactly the bytes after the header.
fn check_binary_sizes(header: &Header, file_len: u64) -> Result<(), String> {
    let body = file_len.saturating_sub(header.len);
    let mut need = 0u64;
    for e in &header.elements {
        let Some(stride) = e.stride() else {
            return Ok(()); // list properties: sizes vary, the parser checks
        };
        let bytes = e
            .count
            .checked_mul(stride)
            .and_then(|b| b.checked_add(need));
        match bytes {
            Some(b) if b <= body => need = b,
            _ => {
                let fits = (body - need.min(body)).checked_div(stride).unwrap_or(0);
                return Err(format!(
                    "element `{}`: the header declares {} elements of {stride} bytes \
                     but the file holds data for {fits} (truncated file or wrong count)",
                    e.name, e.count
                ));
            }
        }
    }
    if let Some(e) = header.elements.last()
        && let Some(stride) = e.stride()
        && stride > 0
        && body - need >= stride
    {
        return Err(format!(
            "element `{}`: the header declares {} elements but {} more bytes follow \
             them (wrong count)",
            e.name,
            e.count,
            body - need
        ));
    }
    Ok(())
}
