//! Training: datasets of posed photographs, the GPU losses and Adam optimizer, densification
//! strategies, and the `fit` loop.

pub mod data;
