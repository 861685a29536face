//! Real processes in tests: started, read, and always stopped, with
//! deadlines so a failure cannot hang the run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why a process helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The process could not be started.
    #[error("cannot start {command}: {source}")]
    Start {
        /// The command, as `Debug` shows it.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Waiting for the process failed.
    #[error("waiting for {command} failed: {source}")]
    Wait {
        /// The command.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The deadline passed; the process was killed.
    #[error("{command} did not finish within {deadline:?}")]
    Deadline {
        /// The command.
        command: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The process printed no first line in time.
    #[error("{command} printed no line within {deadline:?}")]
    NoLine {
        /// The command.
        command: String,
        /// The deadline.
        deadline: Duration,
    },
}

/// Runs `cmd` to completion (stdin closed, output captured) within
/// `deadline`; past it, the process is killed.
pub fn run(mut cmd: Command, deadline: Duration) -> Result<Output, ProcessError> {
    let command = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcessError::Start {
            command: command.clone(),
            source,
        })?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.map_err(|source| ProcessError::Wait { command, source }),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(ProcessError::Deadline { command, deadline })
        }
    }
}

/// Starts `cmd` and returns it with the first line it prints on stdout
/// (a server's "listening on" banner), waiting at most `deadline`. The
/// rest of its output is drained so it never blocks on a full pipe.
pub fn spawn_with_banner(
    mut cmd: Command,
    deadline: Duration,
) -> Result<(Proc, String), ProcessError> {
    let command = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ProcessError::Start {
            command: command.clone(),
            source,
        })?;
    let stdout = child.stdout.take();
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
    }
    match rx.recv_timeout(deadline) {
        Ok(line) if !line.is_empty() => Ok((proc, line)),
        _ => Err(ProcessError::NoLine { command, deadline }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_and_banner() {
        let mut echo = Command::new("echo");
        echo.arg("hello");
        let out = run(echo, Duration::from_secs(10)).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        assert!(matches!(
            run(sleep, Duration::from_millis(100)),
            Err(ProcessError::Deadline { .. })
        ));
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo ready; sleep 30"]);
        let (_proc, line) = spawn_with_banner(sh, Duration::from_secs(10)).unwrap();
        assert_eq!(line, "ready\n");
    }
}
