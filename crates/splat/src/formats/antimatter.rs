//! The `.splat` files of antimatter15's WebGL viewer (read only): no header, 32 bytes per splat
//! — position (3 × f32 LE), scale (3 × f32, linear, not log), colour (r, g, b as
//! `0.5 + C0·DC` and alpha = sigmoid(opacity), each × 255 as u8), rotation (w, x, y, z as
//! `q/|q| · 128 + 128`, u8). No SH beyond the DC term.

use crate::scene::SplatData;

use super::SceneError;

/// Bytes per splat.
pub const RECORD: usize = 32;

/// The zeroth-order SH basis constant, 1/(2√π).
const SH_C0: f32 = 0.282_094_8;

fn invalid(path: &str, field: impl Into<String>, message: String) -> SceneError {
    SceneError::Invalid {
        path: path.to_string(),
        format: ".splat",
        field: field.into(),
        message,
    }
}

/// Decode a `.splat` file; `path` names it in errors.
///
/// # Errors
/// [`SceneError::Invalid`]: a length that is not a multiple of 32 bytes, a non-positive or
/// non-finite scale, a non-finite position (naming the splat), a zero rotation.
pub fn decode(bytes: &[u8], path: &str) -> Result<SplatData, SceneError> {
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(invalid(
            path,
            "length",
            format!(
                "{} bytes is not a whole number of 32-byte splats",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut d = SplatData::with_capacity(n, 0);
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        let f = |at: usize| f32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
        for a in 0..3 {
            let p = f(4 * a);
            if !p.is_finite() {
                return Err(invalid(path, format!("splat {i} position"), format!("{p}")));
            }
            d.means.push(p);
        }
        for a in 0..3 {
            let s = f(12 + 4 * a);
            if !(s > 0.0 && s.is_finite()) {
                return Err(invalid(
                    path,
                    format!("splat {i} scale"),
                    format!("{s} is not a positive finite scale"),
                ));
            }
            d.log_scales.push(s.ln());
        }
        d.sh.extend((0..3).map(|c| (f32::from(r[24 + c]) / 255.0 - 0.5) / SH_C0));
        let a = (f32::from(r[27]) / 255.0).clamp(0.5 / 255.0, 254.5 / 255.0);
        d.opacity_logits.push((a / (1.0 - a)).ln());
        let q = [r[28], r[29], r[30], r[31]].map(|b| (f32::from(b) - 128.0) / 128.0);
        if q.iter().all(|&c| c == 0.0) {
            return Err(invalid(
                path,
                format!("splat {i} rotation"),
                "the quaternion is zero".into(),
            ));
        }
        d.quats.extend(q);
    }
    Ok(d)
}
