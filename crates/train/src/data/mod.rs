//! Posed-image datasets (NeRF-synthetic, instant-ngp, COLMAP).
