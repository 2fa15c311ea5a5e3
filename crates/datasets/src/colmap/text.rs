//! COLMAP's text files (`cameras.txt`, `images.txt`, `points3D.txt`), `#` comments allowed;
//! errors name the file, line and field.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{DataError, PointCloud};
use super::binary::{checked_size, insert_camera, push_point};
use super::{CameraModel, ColmapCamera, ColmapImage};

/// Non-comment lines with their 1-based line numbers (blank lines kept: an image's empty
/// 2D-point line is meaningful).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.starts_with('#'))
}

/// Parse one whitespace-separated token.
pub(crate) fn tok<T: std::str::FromStr>(
    it: &mut std::str::SplitWhitespace<'_>,
    what: &str,
    path: &Path,
    line: usize,
) -> Result<T, DataError> {
    let s = it.next().ok_or_else(|| DataError::Record {
        path: path.to_path_buf(),
        record: format!("line {line}"),
        message: format!("missing {what}"),
    })?;
    s.parse().map_err(|_| DataError::Record {
        path: path.to_path_buf(),
        record: format!("line {line}"),
        message: format!("bad {what} `{s}`"),
    })
}

/// Parse the text of a `cameras.txt`; `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, unknown model names,
/// wrong parameter counts, zero or out-of-range (u32) width/height, non-finite parameters,
/// duplicate camera ids.
pub fn read_cameras_txt(path: &Path, text: &str) -> Result<BTreeMap<u32, ColmapCamera>, DataError> {
    let mut cams = BTreeMap::new();
    for (ln, line) in lines(text).filter(|(_, l)| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let id: u32 = tok(&mut it, "CAMERA_ID", path, ln)?;
        let model_name: String = tok(&mut it, "MODEL", path, ln)?;
        let rec = format!("line {ln}: camera {id}");
        let model = CameraModel::from_name(&model_name).ok_or_else(|| DataError::Record {
            path: path.to_path_buf(),
            record: rec.clone(),
            message: format!("unknown camera model {model_name}"),
        })?;
        let width = checked_size(tok(&mut it, "WIDTH", path, ln)?, "width", &rec, path)?;
        let height = checked_size(tok(&mut it, "HEIGHT", path, ln)?, "height", &rec, path)?;
        let params = it
            .map(|s| {
                s.parse::<f64>().map_err(|_| DataError::Record {
                    path: path.to_path_buf(),
                    record: rec.clone(),
                    message: format!("bad parameter `{s}`"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if params.len() != model.num_params() {
            return Err(DataError::Record {
                path: path.to_path_buf(),
                record: rec,
                message: format!(
                    "{} takes {} parameters, got {}",
                    model.name(),
                    model.num_params(),
                    params.len()
                ),
            });
        }
        insert_camera(
            &mut cams,
            ColmapCamera {
                id,
                model,
                width,
                height,
                params,
            },
            path,
        )?;
    }
    Ok(cams)
}

/// Parse the text of an `images.txt` (two lines per image; the 2D point lines are skipped);
/// `path` only names the file in errors.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, a missing `NAME`.
pub fn read_images_txt(path: &Path, text: &str) -> Result<Vec<ColmapImage>, DataError> {
    let mut images = Vec::new();
    let mut it = lines(text);
    while let Some((ln, line)) = it.next() {
        if line.is_empty() {
            continue; // stray blank line where a header is expected
        }
        let mut toks = line.split_whitespace();
        let id: u32 = tok(&mut toks, "IMAGE_ID", path, ln)?;
        let mut v = [0.0f64; 7];
        for (x, what) in v.iter_mut().zip(["QW", "QX", "QY", "QZ", "TX", "TY", "TZ"]) {
            *x = tok(&mut toks, what, path, ln)?;
        }
        let camera_id: u32 = tok(&mut toks, "CAMERA_ID", path, ln)?;
        // NAME is the rest of the line (it may contain spaces).
        let name = rest_after_tokens(line, 9);
        if name.is_empty() {
            return Err(DataError::Record {
                path: path.to_path_buf(),
                record: format!("line {ln}: image {id}"),
                message: "missing NAME".into(),
            });
        }
        // The next line is this image's 2D point list (possibly empty or absent at EOF).
        let _points = it.next();
        images.push(ColmapImage {
            id,
            qvec: [v[0], v[1], v[2], v[3]],
            tvec: [v[4], v[5], v[6]],
            camera_id,
            name: name.to_string(),
        });
    }
    Ok(images)
}

/// The remainder of `line` after `n` whitespace-separated tokens, trimmed.
pub(crate) fn rest_after_tokens(line: &str, n: usize) -> &str {
    let mut s = line.trim_start();
    for _ in 0..n {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        s = s[end..].trim_start();
    }
    s.trim_end()
}

/// Parse the text of a `points3D.txt` (tracks are ignored); `path` only names the file in
/// errors. The cloud has one colour per position.
///
/// # Errors
/// [`DataError::Record`] naming the line: missing or unparsable fields, non-finite positions.
pub fn read_points_txt(path: &Path, text: &str) -> Result<PointCloud, DataError> {
    let mut pc = PointCloud::default();
    for (ln, line) in lines(text).filter(|(_, l)| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let id: u64 = tok(&mut it, "POINT3D_ID", path, ln)?;
        let xyz = [
            tok(&mut it, "X", path, ln)?,
            tok(&mut it, "Y", path, ln)?,
            tok(&mut it, "Z", path, ln)?,
        ];
        let rgb = [
            tok(&mut it, "R", path, ln)?,
            tok(&mut it, "G", path, ln)?,
            tok(&mut it, "B", path, ln)?,
        ];
        push_point(&mut pc, xyz, rgb, path, &format!("line {ln}: point {id}"))?;
    }
    Ok(pc)
}
