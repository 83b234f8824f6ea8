//! A job service that pushes progress to its watchers: a subscription
//! (`ipc_rpc::Sink` on the server, `ipc_rpc::Subscription` on the client) drives a
//! progress bar. The endpoint picks the transport:
//!
//! ```text
//! cargo run --example job_watch -- unix:/tmp/jobs.sock   # UNIX socket
//! cargo run --example job_watch -- shm:/jobs              # shared memory
//! cargo run --example job_watch -- pipe                   # a child over two pipes
//! ```
//!
//! With one argument it starts itself again as the server (a child process), submits a
//! job, watches it to the end, and stops the server. In two terminals instead:
//!
//! ```text
//! cargo run --example job_watch -- serve unix:/tmp/jobs.sock
//! cargo run --example job_watch -- watch unix:/tmp/jobs.sock
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use ipc_rpc::{Endpoint, Sink, SinkError, ipc_service};
use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Debug, Clone, Serialize, Deserialize, ipc_rpc::Schema)]
pub struct JobSpec {
    /// Shown in the log.
    pub name: String,
    /// How many steps the job takes.
    pub steps: u32,
    /// How long each step takes, in milliseconds.
    pub step_ms: u64,
}

/// A job's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ipc_rpc::Schema)]
pub struct JobId(pub u64);

/// What a watcher is told.
#[derive(Debug, Clone, Serialize, Deserialize, ipc_rpc::Schema)]
pub enum JobEvent {
    /// `done` of `of` steps are done.
    Progress {
        /// Steps done.
        done: u32,
        /// Steps in all.
        of: u32,
    },
    /// A line of the job's log.
    Log(String),
    /// The job ended; the stream ends after this.
    Finished,
}

/// Jobs that run on the server, watched from other processes.
#[ipc_service]
pub trait Jobs {
    /// Starts a job in the background and returns its id.
    fn submit(&self, spec: JobSpec) -> JobId;
    /// Streams the job's events until it ends.
    fn watch(&self, id: JobId, events: Sink<JobEvent>);
}

/// A running job's watchers.
type Watchers = Arc<Mutex<HashMap<JobId, Vec<Sink<JobEvent>>>>>;

#[derive(Default)]
struct Service {
    next: AtomicU64,
    watchers: Watchers,
}

/// Sends `event` to every watcher of `id`, forgetting those that are gone. Never
/// waits: a watcher whose buffer is full (it reads slowly) misses this event, and the
/// others are not held up by it.
fn tell(watchers: &Watchers, id: JobId, event: &JobEvent) {
    let mut all = watchers.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sinks) = all.get_mut(&id) {
        sinks.retain(|sink| !matches!(sink.try_send(event), Err(SinkError::Closed(_))));
    }
}

impl Jobs for Service {
    fn submit(&self, spec: JobSpec) -> JobId {
        let id = JobId(self.next.fetch_add(1, Ordering::Relaxed));
        let watchers = self.watchers.clone();
        watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Vec::new());
        thread::spawn(move || {
            // Give a watcher that subscribes right after submitting time to join.
            thread::sleep(Duration::from_millis(50));
            tell(
                &watchers,
                id,
                &JobEvent::Log(format!("{} started", spec.name)),
            );
            for done in 1..=spec.steps {
                thread::sleep(Duration::from_millis(spec.step_ms));
                let of = spec.steps;
                tell(&watchers, id, &JobEvent::Progress { done, of });
            }
            tell(&watchers, id, &JobEvent::Log(format!("{} done", spec.name)));
            tell(&watchers, id, &JobEvent::Finished);
            // Dropping the job's sinks ends its watchers' streams.
            watchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        });
        id
    }

    fn watch(&self, id: JobId, events: Sink<JobEvent>) {
        let mut all = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        match all.get_mut(&id) {
            // Kept: the job's thread sends to it later.
            Some(sinks) => sinks.push(events),
            // Unknown or already ended: the stream ends at once.
            None => {
                let _ = events.send(&JobEvent::Finished);
            }
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // Started by `spawn_child` for a `pipe` endpoint: serve the parent, then exit.
    if let Some(server) = ipc_rpc::serve_parent(JobsServer::new(Service::default()))? {
        server.wait();
        return Ok(());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = |s: Option<&String>| -> Result<Endpoint, Box<dyn Error>> {
        Ok(
            s.ok_or("usage: job_watch [serve|watch] ENDPOINT (e.g. unix:/tmp/jobs.sock or pipe)")?
                .parse()?,
        )
    };
    match args.first().map(String::as_str) {
        Some("serve") => serve(&endpoint(args.get(1))?),
        Some("watch") => watch(&JobsClient::connect(&endpoint(args.get(1))?)?),
        Some("--help" | "-h") => {
            println!("usage: job_watch [serve|watch] ENDPOINT");
            Ok(())
        }
        _ => both(&endpoint(args.first())?),
    }
}

/// Serves until SIGTERM or SIGINT (Ctrl-C), then shuts down and cleans up.
fn serve(endpoint: &Endpoint) -> Result<(), Box<dyn Error>> {
    let server = ipc_rpc::serve(endpoint, JobsServer::new(Service::default()))?;
    println!(
        "server pid {} listening on {}",
        std::process::id(),
        server.endpoint()
    );
    server.wait_for_signal()?;
    Ok(())
}

/// Submits a job and draws its progress from the events the server pushes.
fn watch(jobs: &JobsClient) -> Result<(), Box<dyn Error>> {
    let spec = JobSpec {
        name: "resize-photos".into(),
        steps: 20,
        step_ms: 60,
    };
    let id = jobs.submit(spec)?;
    println!("submitted job {} to {}", id.0, jobs.peer());
    for event in jobs.watch(id)? {
        match event? {
            JobEvent::Progress { done, of } => {
                let width = 30;
                let filled = (done * width / of.max(1)) as usize;
                print!(
                    "\r[{}{}] {:3}%",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled),
                    done * 100 / of.max(1)
                );
                std::io::stdout().flush()?;
            }
            JobEvent::Log(line) => println!("\r{line:<40}"),
            JobEvent::Finished => println!("\nfinished"),
        }
    }
    println!("the server ended the stream");
    Ok(())
}

/// Starts the server in a child process, watches a job, then stops the child.
fn both(endpoint: &Endpoint) -> Result<(), Box<dyn Error>> {
    let me = Command::new(std::env::current_exe()?);
    if endpoint.to_string() == "pipe" {
        let (jobs, mut child) = ipc_rpc::spawn_child::<JobsClient>(me)?;
        let result = watch(&jobs);
        drop(jobs); // the child sees end-of-file and exits
        child.wait()?;
        return result;
    }
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg(endpoint.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let Some(Ok(ready)) = lines.next() else {
        let status = child.wait()?;
        return Err(format!("the server did not start ({status}); its error is above").into());
    };
    println!("{ready}");
    let bound: Endpoint = ready.rsplit(' ').next().ok_or("bad ready line")?.parse()?;
    let result = JobsClient::connect(&bound)
        .map_err(Into::into)
        .and_then(|jobs| watch(&jobs));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    child.wait()?;
    result
}
