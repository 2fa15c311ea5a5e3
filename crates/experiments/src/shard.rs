//! `--shard I/N`: which prompts of a suite one job runs, so that a suite can be split over
//! processes, GPUs or the tasks of a Slurm job array (issue 29, item 1).
//!
//! Shard `I` of `N` takes prompts `I, I + N, I + 2N, …` (0-based, in file order). Without
//! `--shard`, a Slurm array task picks its shard from `SLURM_ARRAY_TASK_ID`,
//! `SLURM_ARRAY_TASK_COUNT` and `SLURM_ARRAY_TASK_MIN` (task ids need not start at 0: `--array
//! 1-4` gives ids 1…4, min 1, count 4). The shards of one suite never share a prompt.

use anyhow::{Context, Result, bail};

/// One shard of a prompt list: `index` in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This job's shard, 0-based.
    pub index: usize,
    /// How many shards the suite is split into (≥ 1).
    pub count: usize,
}

impl Shard {
    /// The whole suite in one job.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parse `I/N` (0 ≤ I < N).
    ///
    /// # Errors
    /// Not two integers separated by `/`, N = 0, or I ≥ N (the message quotes the text).
    pub fn parse(text: &str) -> Result<Shard> {
        let Some((i, n)) = text.split_once('/') else {
            bail!("--shard {text}: expected I/N, e.g. 0/4");
        };
        let index: usize = i
            .trim()
            .parse()
            .with_context(|| format!("--shard {text}: `{i}` is not a shard index"))?;
        let count: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {text}: `{n}` is not a shard count"))?;
        if count == 0 || index >= count {
            bail!("--shard {text}: needs 0 ≤ I < N");
        }
        Ok(Shard { index, count })
    }

    /// `--shard` if given, else the Slurm array task's shard read through `var` (the process
    /// environment in the CLI), else [`Shard::ALL`].
    ///
    /// # Errors
    /// A malformed `--shard`, or Slurm variables that are not integers or put the task outside
    /// the array (`ID − MIN ≥ COUNT`); the message names the variable.
    pub fn resolve(arg: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        if let Some(text) = arg {
            return Shard::parse(text);
        }
        let read = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .with_context(|| format!("${name} = `{v}` is not an integer")),
            }
        };
        let (Some(id), Some(count)) = (
            read("SLURM_ARRAY_TASK_ID")?,
            read("SLURM_ARRAY_TASK_COUNT")?,
        ) else {
            return Ok(Shard::ALL);
        };
        let min = read("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        if count == 0 || id < min || id - min >= count {
            bail!("$SLURM_ARRAY_TASK_ID = {id} is outside the array (min {min}, count {count})");
        }
        Ok(Shard {
            index: id - min,
            count,
        })
    }

    /// Whether the prompt at `position` (0-based, in suite order) belongs to this shard.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// `""` for the whole suite, else `-shard-I-of-N` (for the names of a shard's own summary
    /// files, which the shards of one suite must not share).
    pub fn suffix(&self) -> String {
        if *self == Shard::ALL {
            String::new()
        } else {
            format!("-shard-{}-of-{}", self.index, self.count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_partition_the_suite() {
        let shards: Vec<Shard> = (0..3)
            .map(|i| Shard::parse(&format!("{i}/3")).unwrap())
            .collect();
        for p in 0..10 {
            assert_eq!(
                shards.iter().filter(|s| s.takes(p)).count(),
                1,
                "prompt {p}"
            );
        }
        assert!(shards[1].takes(4) && !shards[1].takes(5));
        assert!(Shard::ALL.takes(7));
    }

    #[test]
    fn bad_shards_are_refused() {
        for bad in ["3", "3/3", "1/0", "a/2", "-1/2"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn slurm_array_variables_pick_the_shard() {
        let s = Shard::resolve(
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        // --shard wins over the environment; no variables: the whole suite.
        let s = Shard::resolve(Some("0/2"), env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap();
        assert_eq!(s, Shard { index: 0, count: 2 });
        assert_eq!(Shard::resolve(None, env(&[])).unwrap(), Shard::ALL);
        let e = Shard::resolve(
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID"), "{e}");
        let e = Shard::resolve(
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "x"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID"), "{e}");
    }
}
