//! Seeds of the training loops' random streams. Every random draw of step k (cameras,
//! backgrounds, timesteps, noise, densification choices) comes from a generator seeded by
//! `(seed, k, stream)`, so a resumed run draws exactly what the uninterrupted run drew.

/// A 64-bit seed for random stream `stream` of step `step` (splitmix64 of the mix).
pub fn step_seed(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(step.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::step_seed;

    #[test]
    fn step_seeds_differ_by_step_and_stream() {
        assert_ne!(step_seed(0, 1, 1), step_seed(0, 2, 1));
        assert_ne!(step_seed(0, 1, 1), step_seed(0, 1, 2));
        assert_eq!(step_seed(5, 9, 1), step_seed(5, 9, 1));
    }
}
