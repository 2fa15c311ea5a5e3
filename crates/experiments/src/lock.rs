//! A run folder's lock, so that two jobs of a suite (shards, Slurm array tasks, a requeued task
//! and its ghost) never write the same run at once (issue 29, item 1).
//!
//! The lock is the file [`LOCK_FILE`] in the run folder, created exclusively, holding the
//! holder's host and process id for people to read. Its holder touches it every
//! [`HEARTBEAT`] from a background thread; a lock whose modification time is older than
//! [`STALE_AFTER`] belongs to a job that died (killed, preempted, its node lost) and is taken
//! over. This needs no host names or process tables to agree across nodes, only a shared
//! filesystem whose modification times advance.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

/// The lock's file name inside a run folder.
pub const LOCK_FILE: &str = ".splatdream.lock";
/// How often the holder refreshes the lock's modification time.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Age after which a lock is taken to belong to a dead job.
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// A held lock: refreshed while alive, removed when dropped.
pub struct RunLock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What [`RunLock::acquire`] found.
pub enum Acquired {
    /// The lock is ours until dropped.
    Held(RunLock),
    /// A live job holds it; the text is the lock file's content (its host and process id).
    Busy(String),
}

impl RunLock {
    /// Take the lock of run folder `dir` (created if missing), taking over a stale one.
    ///
    /// # Errors
    /// The folder cannot be created or the lock file cannot be written (the error names it).
    pub fn acquire(dir: &Path) -> Result<Acquired> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .or_else(|_| std::env::var("HOSTNAME"))
                        .unwrap_or_else(|_| "unknown host".into());
                    writeln!(f, "host {} pid {}", host.trim(), std::process::id())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(Acquired::Held(RunLock::hold(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .unwrap_or_default();
                    if age < STALE_AFTER {
                        let who = std::fs::read_to_string(&path).unwrap_or_default();
                        return Ok(Acquired::Busy(who.trim().to_string()));
                    }
                    // A dead job's lock: remove it and try once more (another job taking it
                    // over at the same moment wins the exclusive create).
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating the lock {}", path.display()));
                }
            }
        }
        let who = std::fs::read_to_string(&path).unwrap_or_default();
        Ok(Acquired::Busy(who.trim().to_string()))
    }

    fn hold(path: PathBuf) -> RunLock {
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_millis(200);
            let mut since = Duration::ZERO;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                since += tick;
                if since >= HEARTBEAT {
                    since = Duration::ZERO;
                    if let Ok(f) = OpenOptions::new().append(true).open(&p) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        RunLock {
            path,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_is_refused_a_stale_one_taken_over_and_a_dropped_one_removed() {
        let run = std::env::temp_dir().join(format!("splatdream-lock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        let Acquired::Held(first) = RunLock::acquire(&run).unwrap() else {
            panic!("a fresh folder must be free");
        };
        match RunLock::acquire(&run).unwrap() {
            Acquired::Busy(who) => assert!(who.contains("pid"), "{who}"),
            Acquired::Held(_) => panic!("a held lock was taken twice"),
        }
        // Forget the holder without removing its file: a job that died.
        std::mem::forget(first);
        let old = SystemTime::now() - Duration::from_secs(3600);
        OpenOptions::new()
            .append(true)
            .open(run.join(LOCK_FILE))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let Acquired::Held(second) = RunLock::acquire(&run).unwrap() else {
            panic!("a stale lock must be taken over");
        };
        drop(second);
        assert!(
            !run.join(LOCK_FILE).exists(),
            "a dropped lock must be removed"
        );
        let _ = std::fs::remove_dir_all(&run);
    }
}
