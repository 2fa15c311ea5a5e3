//! `splatdream gallery`: a static HTML page over a folder of runs (a `generate --prompts` suite
//! or a `compare` table; issue 29, item 3). No server: open the file in a browser.
//!
//! A run is a folder holding `config.toml` (what `generate` writes) and at least one of
//! `turntable.gif`, `compare-views.png`, `views.png` or `point_cloud.ply`, found at most four
//! levels below the suite folder. Each becomes a card (turntable or views, prompt, method,
//! steps, seconds, splats, and the toy-world evaluation where `evaluation.json` exists) and a
//! row of a table sortable by any column (a click on its header). Cards are grouped by prompt,
//! so a `compare` folder shows the methods side by side. Images are linked by paths relative to
//! the page, so the page works where it was written, next to the runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

/// The options of `splatdream gallery`.
#[derive(Args)]
pub struct GalleryArgs {
    /// The suite's output folder (`generate --prompts … --out DIR` or `compare … --out DIR`).
    dir: PathBuf,
    /// The page to write (default `<dir>/index.html`), atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Page title (default: the folder's name).
    #[arg(long)]
    title: Option<String>,
}

/// What the page shows of one run.
#[derive(Debug, Default)]
struct Run {
    /// Folder, relative to the page's folder (for links).
    link: String,
    prompt: String,
    method: String,
    steps: Option<u64>,
    seconds: Option<f64>,
    splats: Option<u64>,
    /// Turntable or views image, relative to the page's folder.
    image: Option<String>,
    /// iou, masked_psnr_db, colour_error, r_precision_category, r_precision_colour.
    eval: Option<[f64; 5]>,
}

/// `path` relative to `base`, with `/` separators (both absolute or both relative to the same
/// place); falls back to the absolute path.
fn relative(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, b) = (abs(path), abs(base));
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return p.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".into(); bc.len() - common];
    parts.extend(
        pc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The run folders under `dir` (depth ≤ 4), sorted by path.
fn find_runs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let outputs = [
        "turntable.gif",
        "compare-views.png",
        "views.png",
        "point_cloud.ply",
    ];
    if dir.join("config.toml").is_file() && outputs.iter().any(|f| dir.join(f).is_file()) {
        out.push(dir.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "checkpoints"))
        .collect();
    dirs.sort();
    for d in dirs {
        find_runs(&d, depth - 1, out);
    }
}

/// Read one run folder.
///
/// # Errors
/// `config.toml` unreadable or not TOML (the error names the file).
fn read_run(dir: &Path, page_dir: &Path) -> Result<Run> {
    let cfg_path = dir.join("config.toml");
    let cfg: toml::Table = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?
        .parse()
        .with_context(|| format!("{}: not valid TOML", cfg_path.display()))?;
    let mut run = Run {
        link: relative(dir, page_dir),
        prompt: cfg
            .get("prompt")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .into(),
        method: cfg
            .get("guidance")
            .and_then(|g| g.get("method"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .into(),
        steps: cfg
            .get("steps")
            .and_then(|v| v.as_integer())
            .map(|v| v as u64),
        ..Default::default()
    };
    let json = |name: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
    };
    if let Some(row) = json("compare-row.json") {
        run.seconds = row["seconds"].as_f64();
        run.steps = row["steps"].as_u64().or(run.steps);
    }
    if let Some(last) = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
        })
    {
        run.splats = last["splats"].as_u64();
    }
    if let Some(e) = json("evaluation.json") {
        let f = |k: &str| e[k].as_f64().unwrap_or(f64::NAN);
        run.eval = Some([
            f("iou"),
            f("masked_psnr_db"),
            f("colour_error"),
            f("r_precision_category"),
            f("r_precision_colour"),
        ]);
    }
    run.image = ["turntable.gif", "compare-views.png", "views.png"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .map(|p| relative(&p, page_dir));
    Ok(run)
}

/// Text safe inside HTML elements and double-quoted attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number cell: its text and a `data-v` sort key (missing values sort last).
fn num(v: Option<f64>, digits: usize) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) => format!("<td data-v=\"{v}\">{v:.digits$}</td>"),
        None => "<td data-v=\"\">—</td>".into(),
    }
}

/// The page: cards grouped by prompt, then the sortable table.
fn page(title: &str, runs: &[Run]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title>\n<style>\n{CSS}</style></head><body>\n<h1>{t}</h1>\n\
         <p>{n} runs. Click a column header to sort the table.</p>\n",
        t = esc(title),
        n = runs.len()
    );
    let mut prompts: Vec<&str> = vec![];
    for r in runs {
        if !prompts.contains(&r.prompt.as_str()) {
            prompts.push(&r.prompt);
        }
    }
    for p in &prompts {
        html.push_str(&format!(
            "<section><h2>{}</h2><div class=\"cards\">\n",
            esc(p)
        ));
        for r in runs.iter().filter(|r| &r.prompt.as_str() == p) {
            let img = match &r.image {
                Some(src) => format!("<img src=\"{}\" alt=\"{}\">", esc(src), esc(&r.method)),
                None => "<div class=\"noimg\">no image</div>".into(),
            };
            let mut facts = vec![
                format!("<b>{}</b>", esc(&r.method)),
                r.steps.map(|s| format!("{s} steps")).unwrap_or_default(),
                r.seconds.map(|s| format!("{s:.0} s")).unwrap_or_default(),
                r.splats.map(|s| format!("{s} splats")).unwrap_or_default(),
            ];
            if let Some(e) = r.eval {
                facts.push(format!(
                    "IoU {:.3} · PSNR {:.2} dB · colour err {:.3} · R cat {:.2} · R colour {:.2}",
                    e[0], e[1], e[2], e[3], e[4]
                ));
            }
            facts.retain(|f| !f.is_empty());
            html.push_str(&format!(
                "<div class=\"card\"><a href=\"{}\">{img}</a><p>{}</p></div>\n",
                esc(&r.link),
                facts.join("<br>")
            ));
        }
        html.push_str("</div></section>\n");
    }
    html.push_str(
        "<h2>All runs</h2>\n<table id=\"runs\"><thead><tr><th>prompt</th><th>method</th>\
         <th>steps</th><th>seconds</th><th>splats</th><th>IoU</th><th>PSNR dB</th>\
         <th>colour err</th><th>R cat</th><th>R colour</th></tr></thead><tbody>\n",
    );
    for r in runs {
        let e = r.eval.map(|e| e.map(Some)).unwrap_or([None; 5]);
        html.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td>{}{}{}{}{}{}{}{}</tr>\n",
            esc(&r.prompt),
            esc(&r.link),
            esc(&r.method),
            num(r.steps.map(|v| v as f64), 0),
            num(r.seconds, 1),
            num(r.splats.map(|v| v as f64), 0),
            num(e[0], 3),
            num(e[1], 2),
            num(e[2], 3),
            num(e[3], 2),
            num(e[4], 2),
        ));
    }
    html.push_str("</tbody></table>\n<script>\n");
    html.push_str(SCRIPT);
    html.push_str("</script></body></html>\n");
    html
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;background:#fafafa}\
.cards{display:flex;flex-wrap:wrap;gap:12px}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:280px}\
.card img{width:100%;image-rendering:pixelated;background:#fff}\
.noimg{height:120px;display:flex;align-items:center;justify-content:center;color:#999}\
table{border-collapse:collapse;background:#fff}\
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}\
th{cursor:pointer;background:#eee}\n";

/// Sorts the table by a clicked column: numbers by `data-v` (missing last), text otherwise;
/// a second click reverses. Once the page has loaded, `<body>` gets `data-images` and
/// `data-loaded` (images that decoded), which the headless-browser test reads.
const SCRIPT: &str = "document.querySelectorAll('#runs th').forEach((th, col) => {\n\
  th.addEventListener('click', () => {\n\
    const body = document.querySelector('#runs tbody');\n\
    const rows = Array.from(body.rows);\n\
    const dir = th.dataset.dir === 'asc' ? -1 : 1;\n\
    th.dataset.dir = dir === 1 ? 'asc' : 'desc';\n\
    const key = r => { const c = r.cells[col]; return c.dataset.v !== undefined ? \
(c.dataset.v === '' ? null : parseFloat(c.dataset.v)) : c.textContent; };\n\
    rows.sort((a, b) => { const x = key(a), y = key(b);\n\
      if (x === null) return 1; if (y === null) return -1;\n\
      return (typeof x === 'number' ? x - y : String(x).localeCompare(String(y))) * dir; });\n\
    rows.forEach(r => body.appendChild(r));\n\
  });\n\
});\n\
window.addEventListener('load', () => {\n\
  const imgs = Array.from(document.images);\n\
  document.body.dataset.images = imgs.length;\n\
  document.body.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;\n\
});\n";

/// Run `splatdream gallery`.
///
/// # Errors
/// The folder is missing or holds no run, a run's `config.toml` is unreadable, or the page
/// cannot be written.
pub fn cmd_gallery(a: GalleryArgs) -> Result<()> {
    if !a.dir.is_dir() {
        bail!("{}: not a folder", a.dir.display());
    }
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("index.html"));
    let page_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    crate::check_out_file("--out", &out)?;
    let mut dirs = vec![];
    find_runs(&a.dir, 4, &mut dirs);
    if dirs.is_empty() {
        bail!(
            "{}: no runs found (folders with config.toml and a turntable, views or PLY, up to \
             four levels down)",
            a.dir.display()
        );
    }
    let runs = dirs
        .iter()
        .map(|d| read_run(d, &page_dir))
        .collect::<Result<Vec<_>>>()?;
    let title = a.title.clone().unwrap_or_else(|| {
        std::path::absolute(&a.dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "splatdream runs".into())
    });
    train::output::write_text(&out, &page(&title, &runs))?;
    println!(
        "{}: {} runs → {}",
        a.dir.display(),
        runs.len(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_and_descend() {
        assert_eq!(
            relative(Path::new("/a/b/c/x.gif"), Path::new("/a/b")),
            "c/x.gif"
        );
        assert_eq!(
            relative(Path::new("/a/x/y.png"), Path::new("/a/b")),
            "../x/y.png"
        );
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), ".");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("a <b> & \"c\""), "a &lt;b&gt; &amp; &quot;c&quot;");
        let p = page(
            "t",
            &[Run {
                prompt: "<script>".into(),
                method: "sds".into(),
                ..Default::default()
            }],
        );
        assert!(p.contains("<h2>&lt;script&gt;</h2>"), "{p}");
    }
}
