//! `bench --compare a.json b.json`: the same cases of two result files side by side.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::*;

/// One side of a comparison: the file's adapter and its cases' medians.
pub(crate) struct Loaded {
    pub(crate) adapter: String,
    pub(crate) medians: BTreeMap<String, f64>,
    pub(crate) order: Vec<String>,
}

/// Read a result file, naming the file and the field on any problem.
pub(crate) fn load_results(path: &Path) -> Result<Loaded> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{p}: cannot read"))?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("{p}: not valid JSON"))?;
    let schema = doc
        .get("schema")
        .and_then(Value::as_str)
        .with_context(|| format!("{p}: field `schema`: missing or not a string"))?;
    ensure!(
        schema == SCHEMA,
        "{p}: field `schema`: `{schema}` is not `{SCHEMA}`"
    );
    let adapter = doc
        .get("adapter")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let results = doc
        .get("results")
        .and_then(Value::as_array)
        .with_context(|| format!("{p}: field `results`: missing or not an array"))?;
    let mut medians = BTreeMap::new();
    let mut order = vec![];
    for (k, r) in results.iter().enumerate() {
        let case = r
            .get("case")
            .and_then(Value::as_str)
            .with_context(|| format!("{p}: field `results[{k}].case`: missing or not a string"))?;
        let m = r
            .get("median_ms")
            .and_then(Value::as_f64)
            .filter(|m| m.is_finite() && *m > 0.0)
            .with_context(|| {
                format!(
                    "{p}: field `results[{k}].median_ms` ({case}): missing or not a positive number"
                )
            })?;
        ensure!(
            medians.insert(case.to_string(), m).is_none(),
            "{p}: field `results[{k}].case`: `{case}` appears twice"
        );
        order.push(case.to_string());
    }
    Ok(Loaded {
        adapter,
        medians,
        order,
    })
}

/// `bench --compare A B`: the cases in both with median A, median B and B/A (above 1: B is
/// slower), then the cases only in one of them.
pub(crate) fn compare(a_path: &Path, b_path: &Path) -> Result<()> {
    let a = load_results(a_path)?;
    let b = load_results(b_path)?;
    println!("A: {} ({})", a_path.display(), a.adapter);
    println!("B: {} ({})", b_path.display(), b.adapter);
    let width = a
        .order
        .iter()
        .chain(&b.order)
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>8}",
        "case", "A median ms", "B median ms", "B/A"
    );
    let mut both = 0;
    for c in &a.order {
        if let Some(mb) = b.medians.get(c) {
            let ma = a.medians[c];
            println!("{c:<width$}  {ma:>12.3}  {mb:>12.3}  {:>8.3}", mb / ma);
            both += 1;
        }
    }
    if both == 0 {
        println!("(no case is in both files)");
    }
    for (label, x, y, path) in [("A", &a, &b, a_path), ("B", &b, &a, b_path)] {
        let only: Vec<&String> = x
            .order
            .iter()
            .filter(|c| !y.medians.contains_key(*c))
            .collect();
        if !only.is_empty() {
            println!("only in {label} ({}):", path.display());
            for c in only {
                println!("  {c}  {:.3} ms", x.medians[c]);
            }
        }
    }
    Ok(())
}
