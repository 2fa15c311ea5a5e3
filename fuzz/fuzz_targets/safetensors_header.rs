//! Fuzz `sd::weights::parse_header` (the safetensors header of a weight file: length, JSON,
//! dtypes, shapes, data offsets) and `sd::weights::tensor_values` (the F32/F16/BF16 conversion
//! with its name, shape and dtype checks): any bytes give a clean result; every tensor's byte
//! range lies in the file and matches its dtype and shape; converted tensors have the shape's
//! element count.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use safetensors::Dtype;
use sd::weights::{parse_header, tensor_values};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    let Ok(index) = parse_header(data, path) else {
        return;
    };
    assert!(index.len() <= data.len());
    for (name, (dtype, shape, range)) in &index {
        assert!(range.start <= range.end && range.end <= data.len());
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let Some(numel) = numel else {
            panic!("tensor `{name}`: shape {shape:?} overflows");
        };
        if dtype.bitsize() % 8 == 0 {
            assert_eq!(numel * dtype.bitsize() / 8, range.len(), "tensor `{name}`");
        }
        match tensor_values(data, &index, path, name, shape, false) {
            Ok(v) => {
                assert!(matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16));
                assert_eq!(v.len(), numel);
            }
            Err(sd::weights::WeightError::Dtype { .. }) => {
                assert!(!matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16));
            }
            Err(e) => panic!("tensor `{name}` of the index cannot be read: {e}"),
        }
        // The 1×1-convolution form of a 2-D weight, and a wrong shape.
        if shape.len() == 4 && shape[2..] == [1, 1] {
            assert!(
                tensor_values(data, &index, path, name, &shape[..2], true).is_ok()
                    || !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
            );
        }
        let mut wrong = shape.clone();
        wrong.push(2);
        assert!(tensor_values(data, &index, path, name, &wrong, true).is_err());
    }
    assert!(tensor_values(data, &index, path, "\u{0}no such tensor", &[1], false).is_err());
});
