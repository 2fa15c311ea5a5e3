//! Training: datasets of posed photographs, the GPU losses and Adam optimizer, densification
//! strategies, and the `fit` loop.

pub mod adam;
pub mod data;
pub mod densify;
pub mod fit;
pub mod init;
pub mod loss;
pub mod output;
pub mod params;
