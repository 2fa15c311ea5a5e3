//! `tools/slurm/generate-array.sbatch` on a real single-node Slurm cluster (issue 29, item 2).
//!
//! The test starts its own `munged`, `slurmctld` and `slurmd` on localhost (Debian's `munge` and
//! `slurm-wlm`; `.ci/run` installs them), all state in a temporary folder and on free ports,
//! and stops them afterwards. It submits a 3-task array over 6 toy-world prompts, cancels task 1
//! with `scancel` while its first prompt is mid-run, resubmits that task, and checks that every
//! prompt ends with its PLY and metrics, that the cancelled run was continued from its checkpoint
//! rather than restarted, and that no prompt ran twice (each step is logged once, each prompt by
//! the task that owns it).
//!
//! Slurm needs root here (slurmd starts the jobs). Without root or without the programs, the
//! test fails under CI (`CI` set) and is skipped with a message elsewhere; when the programs
//! are there but the daemons cannot start (or the node does not come up in 60 s), it is
//! skipped with the daemon's message (issue 29: "skips with a clear message only where Slurm
//! cannot start"); the started daemons are stopped either way.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROGRAMS: &[&str] = &[
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scancel",
    "sinfo",
];

/// The program's path on `PATH`, `/usr/sbin` or `/sbin` (the daemons live in sbin).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn output(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        common::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

/// A running single-node cluster; dropping it cancels every job and stops the daemons.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    /// Start the daemons; `Err` (with the daemon's output or the logs' folder) when Slurm
    /// cannot start on this machine.
    fn start(dir: &Path) -> Result<Cluster, String> {
        let host = output(Command::new("hostname").arg("-s"));
        let conf = dir.join("slurm.conf");
        for d in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let d = dir.display();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::fs::write(
            &conf,
            format!(
                "ClusterName=splatdreamtest\nSlurmctldHost={host}\n\
                 SlurmctldPort={}\nSlurmdPort={}\nSlurmUser=root\nSlurmdUser=root\n\
                 AuthType=auth/munge\nAuthInfo=socket={d}/munge.sock\nCredType=cred/munge\n\
                 StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSwitchType=switch/none\n\
                 MpiDefault=none\nSchedulerType=sched/builtin\nSelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\nJobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\nReturnToService=2\nKillWait=60\n\
                 NodeName={host} CPUs={cpus} RealMemory=2000 State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                free_port(),
                free_port()
            ),
        )
        .unwrap();
        let key: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let key_file = dir.join("munge.key");
        std::fs::write(&key_file, key).unwrap();
        output(Command::new("chmod").arg("600").arg(&key_file));
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: conf.clone(),
        };
        let daemon = |c: &mut Command| -> Result<(), String> {
            let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{c:?} failed:\n{}", common::text(&out)))
            }
        };
        daemon(
            Command::new(find("munged").unwrap())
                .arg("--force")
                .arg(format!("--key-file={}", key_file.display()))
                .arg(format!("--socket={d}/munge.sock"))
                .arg(format!("--pid-file={d}/munged.pid"))
                .arg(format!("--log-file={d}/munged.log"))
                .arg(format!("--seed-file={d}/munge.seed")),
        )?;
        daemon(
            Command::new(find("slurmctld").unwrap())
                .arg("-f")
                .arg(&conf)
                .arg("-i"),
        )?;
        daemon(Command::new(find("slurmd").unwrap()).arg("-f").arg(&conf))?;
        let t0 = Instant::now();
        loop {
            let state = cluster.client("sinfo").args(["-h", "-o", "%T"]).output();
            if state.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the node did not come up idle in 60 s; logs in {d}"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(cluster)
    }

    /// A Slurm client command for this cluster, run in the repository root.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(find(program).unwrap_or_else(|| PathBuf::from(program)));
        c.env("SLURM_CONF", &self.conf).current_dir(common::root());
        c
    }

    /// `sbatch` the repository's array script; returns the job id.
    fn submit(&self, array: &str, script_args: &[String]) -> String {
        let mut c = self.client("sbatch");
        c.args([
            "--parsable",
            "--gres=none",
            "--cpus-per-task=1",
            "--mem=500M",
        ])
        .arg(format!("--array={array}"))
        .arg(format!("--output={}/slurm-%A_%a.out", self.dir.display()))
        .arg("tools/slurm/generate-array.sbatch")
        .args(script_args)
        .env("SPLATDREAM_BIN", env!("CARGO_BIN_EXE_splatdream"));
        output(&mut c)
    }

    /// The states of the job's (or task's) entries still in the queue.
    fn queued(&self, job: &str) -> Vec<String> {
        let out = self
            .client("squeue")
            .args(["-h", "-o", "%i %T", "-j", job])
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_gone(&self, job: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.queued(job).is_empty() {
            assert!(
                t0.elapsed() < limit,
                "job {job} still queued after {limit:?}: {:?}; logs in {}",
                self.queued(job),
                self.dir.display()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .client("scancel")
            .args(["--partition=test", "--full"])
            .status();
        std::thread::sleep(Duration::from_secs(1));
        for daemon in ["slurmd", "slurmctld", "munged"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) {
                let _ = Command::new("kill")
                    .arg(pid.trim())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// The run folder of prompt `k` (`<kkk>-<slug>`), if it exists.
fn run_dir(out: &Path, k: usize) -> Option<PathBuf> {
    let prefix = format!("{k:03}-");
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
}

fn has_checkpoint(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("checkpoints")).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn slurm_array_runs_a_suite_and_a_cancelled_task_resumes() {
    let missing: Vec<_> = PROGRAMS.iter().filter(|p| find(p).is_none()).collect();
    let root = output(Command::new("id").arg("-u")) == "0";
    if !missing.is_empty() || !root {
        let why = format!(
            "Slurm cannot start here: missing {missing:?}{} (Debian: apt-get install slurm-wlm munge; .ci/run does)",
            if root { "" } else { ", not root" }
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    // A short path: munge's socket path must fit a Unix socket address.
    let tmp = common::tmp("slurm", "c");
    let cluster = match Cluster::start(&tmp) {
        Ok(c) => c,
        // The one skip issue 29 allows: the programs are there but Slurm cannot start here
        // (a container without what slurmd needs, say); CI installs them, so a skip there is
        // visible in its log.
        Err(why) => {
            eprintln!("SKIPPED: Slurm cannot start on this machine: {why}");
            return;
        }
    };
    let out = tmp.join("runs");
    let suite = tmp.join("suite.txt");
    let prompts: Vec<&str> = include_str!("../../../configs/toyworld-prompts.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .take(6)
        .collect();
    assert_eq!(prompts.len(), 6);
    std::fs::write(&suite, prompts.join("\n")).unwrap();
    let steps = 6;
    let mut args: Vec<String> = vec![suite.display().to_string(), out.display().to_string()];
    args.extend(
        [
            "--model",
            "toyworld",
            "--batch",
            "1",
            "--set",
            "init.count=300",
            "--set",
            "output.checkpoint_every=2",
            "--set",
            "output.turntable_frames=2",
            "--set",
            "output.turntable_size=32",
            "--set",
            "output.views=0",
            "--set",
            "output.log_every=1",
        ]
        .map(String::from),
    );
    args.extend(["--steps".to_string(), steps.to_string()]);

    let job = cluster.submit("0-2", &args);
    // Task 1 owns prompts 1 and 4: cancel it once prompt 1 has its first checkpoint.
    let t0 = Instant::now();
    let cancelled = loop {
        if let Some(d) = run_dir(&out, 1).filter(|d| has_checkpoint(d)) {
            output(cluster.client("scancel").arg(format!("{job}_1")));
            break d;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(420),
            "prompt 1 made no checkpoint in 420 s; logs in {}",
            tmp.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    cluster.wait_gone(&format!("{job}_1"), Duration::from_secs(120));
    let log1 = std::fs::read_to_string(tmp.join(format!("slurm-{job}_1.out"))).unwrap();
    assert!(log1.contains("stop requested"), "{log1}");
    assert!(
        !cancelled.join("point_cloud.ply").exists(),
        "prompt 1 finished before the cancel reached it:\n{log1}"
    );
    assert!(
        !cancelled.join(".splatdream.lock").exists(),
        "the cancelled task left its lock:\n{log1}"
    );
    assert!(
        run_dir(&out, 4).is_none(),
        "task 1 reached prompt 4:\n{log1}"
    );

    // Resubmit task 1 alone: it must take shard 1 of 3, not the whole suite.
    let mut again = args.clone();
    again.extend(["--shard".to_string(), "1/3".to_string()]);
    let job2 = cluster.submit("1", &again);
    cluster.wait_gone(&job, Duration::from_secs(600));
    cluster.wait_gone(&job2, Duration::from_secs(600));

    let task_log = |j: &str, t: usize| {
        std::fs::read_to_string(tmp.join(format!("slurm-{j}_{t}.out"))).unwrap_or_default()
    };
    let resumed = task_log(&job2, 1);
    for k in 0..6 {
        let dir = run_dir(&out, k).unwrap_or_else(|| panic!("prompt {k} never ran"));
        assert!(dir.join("point_cloud.ply").is_file(), "prompt {k}: no PLY");
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let mut seen: Vec<u64> = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("step").and_then(|s| s.as_u64()))
            .collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            n,
            "prompt {k}: a step was logged twice (ran twice?)"
        );
        assert_eq!(seen, (0..steps).collect::<Vec<_>>(), "prompt {k}: steps");
        // The task that owns the prompt ran it, and no other task did.
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let owners: Vec<String> = (0..3)
            .map(|t| task_log(&job, t))
            .chain([resumed.clone()])
            .filter(|l| l.contains(&format!("/{name}\n")))
            .collect();
        let expected = if k == 1 { 2 } else { 1 }; // prompt 1: cancelled, then resumed
        assert_eq!(
            owners.len(),
            expected,
            "prompt {k} was run by {} task(s)",
            owners.len()
        );
    }
    let name = cancelled.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        resumed
            .lines()
            .any(|l| l.starts_with("resumed ") && l.contains(&name)),
        "the resubmitted task did not continue prompt 1 from its checkpoint:\n{resumed}"
    );
    drop(cluster);
}
