//! The comparison table: one row per (prompt, method) run, kept in the run's folder so a
//! long table resumes; per-method means; the Markdown form.

use std::path::{Path, PathBuf};

use eval::EvalReport;
use serde::{Deserialize, Serialize};

use super::CompareArgs;

/// One row of the comparison table: one method on one prompt.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Row {
    pub(super) prompt: String,
    pub(super) method: String,
    /// Steps of the run in all.
    pub(super) steps: u64,
    /// Training seconds of the sitting that finished the run (a resumed run's earlier
    /// sittings are not counted; `ms_per_step` is over the same steps).
    pub(super) seconds: f64,
    pub(super) ms_per_step: f64,
    pub(super) peak_reserved_mib: f64,
    pub(super) final_grad_norm: f64,
    pub(super) folder: PathBuf,
    /// The result scored against the toy world (3D mode on a toy-world prior only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) evaluation: Option<EvalReport>,
}

/// The name of a finished run's row inside its folder.
pub(super) const ROW_FILE: &str = "compare-row.json";

/// The last `grad_norm` in a metrics.jsonl.
pub(super) fn last_grad_norm(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        })
        .and_then(|v| v["grad_norm"].as_f64())
        .unwrap_or(f64::NAN)
}

/// A finished run's row kept in its folder, if it is for the same prompt, method and number
/// of steps (a run interrupted before its end leaves none: a 3D one continues from its last
/// checkpoint, a 2D one starts again).
pub(super) fn finished_row(dir: &Path, prompt: &str, method: &str, steps: u64) -> Option<Row> {
    let text = std::fs::read_to_string(dir.join(ROW_FILE)).ok()?;
    let row: Row = serde_json::from_str(&text).ok()?;
    (row.prompt == prompt && row.method == method && row.steps == steps).then_some(row)
}

/// Per-method means over the prompts that were evaluated.
#[derive(Serialize)]
pub(super) struct MethodSummary {
    pub(super) method: String,
    pub(super) prompts: usize,
    pub(super) mean_iou: f64,
    pub(super) mean_masked_psnr_db: f64,
    pub(super) mean_colour_error: f64,
    pub(super) mean_r_precision_category: f64,
    pub(super) mean_r_precision_colour: f64,
    /// Prompts on which the judge gave both the category and the colour on at least half of
    /// the views.
    pub(super) prompts_right: usize,
    pub(super) mean_seconds: f64,
}

pub(super) fn summarise(methods: &[String], rows: &[Row]) -> Vec<MethodSummary> {
    methods
        .iter()
        .filter_map(|m| {
            let mine: Vec<(&Row, &EvalReport)> = rows
                .iter()
                .filter(|r| &r.method == m)
                .filter_map(|r| r.evaluation.as_ref().map(|e| (r, e)))
                .collect();
            if mine.is_empty() {
                return None;
            }
            let n = mine.len() as f64;
            let mean = |f: &dyn Fn(&Row, &EvalReport) -> f64| {
                mine.iter().map(|(r, e)| f(r, e)).sum::<f64>() / n
            };
            Some(MethodSummary {
                method: m.clone(),
                prompts: mine.len(),
                mean_iou: mean(&|_, e| e.iou),
                mean_masked_psnr_db: mean(&|_, e| e.masked_psnr_db),
                mean_colour_error: mean(&|_, e| e.colour_error),
                mean_r_precision_category: mean(&|_, e| e.r_precision_category),
                mean_r_precision_colour: mean(&|_, e| e.r_precision_colour),
                prompts_right: mine.iter().filter(|(_, e)| e.r_precision >= 0.5).count(),
                mean_seconds: mean(&|r, _| r.seconds),
            })
        })
        .collect()
}

/// One Markdown table row of `cells`, with its newline.
pub(super) fn table_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// compare.md: the per-run table, then (with evaluations) the per-method summary.
pub(super) fn markdown(
    a: &CompareArgs,
    model_id: &str,
    rows: &[Row],
    summary: &[MethodSummary],
) -> String {
    let evaluated = rows.iter().any(|r| r.evaluation.is_some());
    let mut md = format!(
        "# compare: seed {}, {} mode, model {}\n\nRows of compare.png, top to bottom, follow \
         this table. Peak memory is what burn's allocator had reserved on the device (sampled \
         after every step).{}\n\n| method | prompt | steps | s | ms/step | peak reserved MiB | \
         final ‖g‖ |{}\n|---|---|---|---|---|---|---|{}\n",
        a.seed,
        a.mode,
        model_id,
        if evaluated {
            " IoU, masked PSNR (dB), colour error and the judge's R-precision (category, \
             colour) are `splatdream evaluate`'s, at the toy world's 8 ground-truth cameras."
        } else {
            ""
        },
        if evaluated {
            " IoU | PSNR | colour err | R cat | R colour |"
        } else {
            ""
        },
        if evaluated {
            "---|---|---|---|---|"
        } else {
            ""
        },
    );
    for r in rows {
        let mut cells = vec![
            r.method.clone(),
            r.prompt.clone(),
            r.steps.to_string(),
            format!("{:.1}", r.seconds),
            format!("{:.0}", r.ms_per_step),
            format!("{:.0}", r.peak_reserved_mib),
            format!("{:.3e}", r.final_grad_norm),
        ];
        match (&r.evaluation, evaluated) {
            (Some(e), _) => cells.extend([
                format!("{:.3}", e.iou),
                format!("{:.2}", e.masked_psnr_db),
                format!("{:.3}", e.colour_error),
                format!("{:.2}", e.r_precision_category),
                format!("{:.2}", e.r_precision_colour),
            ]),
            (None, true) => cells.extend(std::iter::repeat_n("—".to_string(), 5)),
            (None, false) => {}
        }
        md.push_str(&table_row(&cells));
    }
    if !summary.is_empty() {
        md.push_str(
            "\nPer method, over the evaluated prompts (\"right\": the judge names both the \
             category and the colour on at least half of the views):\n\n| method | prompts | \
             mean IoU | mean PSNR | mean colour err | mean R cat | mean R colour | prompts \
             right | mean s |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for s in summary {
            md.push_str(&table_row(&[
                s.method.clone(),
                s.prompts.to_string(),
                format!("{:.3}", s.mean_iou),
                format!("{:.2}", s.mean_masked_psnr_db),
                format!("{:.3}", s.mean_colour_error),
                format!("{:.2}", s.mean_r_precision_category),
                format!("{:.2}", s.mean_r_precision_colour),
                format!("{}/{}", s.prompts_right, s.prompts),
                format!("{:.0}", s.mean_seconds),
            ]));
        }
    }
    md
}
