//! End-to-end test package; see tests/.
