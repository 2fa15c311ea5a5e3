//! Fuzz `splat::ply::parse_ply`: any bytes give a clean result; a parsed scene is consistent.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use splat::scene::sh_coeffs;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = splat::ply::parse_ply(data, Path::new("fuzz.ply")) else {
        return;
    };
    // Consistent lengths for the splat count and SH degree.
    let n = d.opacity_logits.len();
    assert!(d.sh_degree <= 3);
    assert_eq!(d.means.len(), 3 * n);
    assert_eq!(d.quats.len(), 4 * n);
    assert_eq!(d.log_scales.len(), 3 * n);
    assert_eq!(d.sh.len(), 3 * sh_coeffs(d.sh_degree) * n);
    // Finite values, no zero quaternion.
    for v in [&d.means, &d.quats, &d.log_scales, &d.opacity_logits, &d.sh] {
        assert!(v.iter().all(|x| x.is_finite()));
    }
    for q in d.quats.chunks_exact(4) {
        assert!(q.iter().any(|&x| x != 0.0));
    }
    // A binary body stores at least one byte per splat, an ASCII body at least 2 per property:
    // the splat count cannot outgrow the input.
    assert!(n <= data.len());
});
