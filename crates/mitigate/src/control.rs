//! The control socket: how `rampart ban` and `rampart unban` reach a running daemon.
//!
//! A Unix socket (`control.sock` in the data directory), mode 0660, group the configured
//! control group. Every connection is checked by the kernel's word on who is at the other end
//! (`SO_PEERCRED`: uid, gid, pid), not by anything the client says: root, the daemon's own user
//! and members of the control group (primary or supplementary, from `/proc/PID/status`) are
//! served; anyone else gets a refusal and nothing changes. The operator's name in the audit log
//! comes from the same credentials.
//!
//! Protocol: one JSON [`Request`] line, one JSON [`Response`] line, then the connection closes.
//! Requests are at most [`MAX_REQUEST_BYTES`] and must arrive within [`REQUEST_TIMEOUT`]; at
//! most [`MAX_CONNECTIONS`] are served at once.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rampart_contract::{Action, Decision, DecisionId, Scope};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

/// File name of the control socket inside the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// The longest request accepted.
pub const MAX_REQUEST_BYTES: u64 = 64 << 10;
/// A request must be complete within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait.
pub const MAX_CONNECTIONS: usize = 16;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// `rampart ban`.
    Ban { scope: Scope, action: Action, duration_secs: Option<u64>, reason: String },
    /// `rampart unban`: a decision id or an address or prefix.
    Unban { which: String, reason: String },
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The ban is in force.
    Enacted { decision: Box<Decision> },
    /// These decisions were withdrawn.
    Withdrawn { ids: Vec<DecisionId> },
    /// Nothing matched.
    NotFound,
    /// The guards refused it (audited); the sentence says why.
    Refused { reason: String },
    /// The request could not be carried out (not authorized, malformed, a store error).
    Error { message: String },
}

/// Who is at the other end of a connection, by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// The user name for the audit log: from `/etc/passwd`, else `uid N`.
    pub fn name(&self) -> String {
        user_name(self.uid).unwrap_or_else(|| format!("uid {}", self.uid))
    }

    /// Supplementary groups, from `/proc/PID/status` (empty when unknown).
    fn groups(&self) -> Vec<u32> {
        let Some(pid) = self.pid else { return Vec::new() };
        let Ok(status) =
            rampart_store::files::read_to_string(Path::new(&format!("/proc/{pid}/status")), 1 << 16)
        else {
            return Vec::new();
        };
        status
            .lines()
            .find_map(|line| line.strip_prefix("Groups:"))
            .map(|groups| groups.split_whitespace().filter_map(|g| g.parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// Who may use the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub uids: Vec<u32>,
    pub gid: Option<u32>,
}

impl Access {
    /// Root, the daemon's user, and `group` when given.
    pub fn daemon(group: Option<u32>) -> Access {
        let me = rustix::process::geteuid().as_raw();
        let mut uids = vec![0];
        if me != 0 {
            uids.push(me);
        }
        Access { uids, gid: group }
    }

    pub fn allows(&self, peer: &Peer) -> bool {
        self.uids.contains(&peer.uid)
            || self.gid.is_some_and(|gid| peer.gid == gid || peer.groups().contains(&gid))
    }
}

/// A group's id, from a number or a name in `/etc/group`.
pub fn resolve_group(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    let text = rampart_store::files::read_to_string(Path::new("/etc/group"), 1 << 22).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == group).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// The user running this process, as a [`Peer`] (direct store access by the CLI).
pub fn local_user() -> Peer {
    Peer {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        pid: Some(std::process::id() as i32),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let text = rampart_store::files::read_to_string(Path::new("/etc/passwd"), 1 << 22).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_owned())
    })
}

/// Handles one authorized request.
pub type Handler = Arc<dyn Fn(Request, &Peer) -> Response + Send + Sync>;

/// Binds the socket at `path` (replacing a stale socket left by a dead daemon), mode 0660,
/// group `gid` when given.
pub fn bind(path: &Path, gid: Option<u32>) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(std::io::Error::other(format!("{} exists and is not a socket", path.display())));
        }
        // A socket nobody answers is left by a daemon that died: replaced. One that answers
        // belongs to another daemon (another data directory, the same socket path).
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::other(format!(
                "{} is served by another running daemon; give this one its own control_socket",
                path.display()
            )));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(listener)
}

/// Serves the socket until `stop` turns true.
pub async fn serve(
    listener: UnixListener,
    access: Access,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (access, handler) = (access.clone(), handler.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = connection(stream, &access, handler).await;
        });
    }
}

async fn connection(mut stream: UnixStream, access: &Access, handler: Handler) -> std::io::Result<()> {
    let response = match stream.peer_cred() {
        Ok(cred) => {
            let peer = Peer { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() };
            if access.allows(&peer) {
                match read_request(&mut stream).await {
                    Ok(request) => tokio::task::spawn_blocking(move || handler(request, &peer))
                        .await
                        .unwrap_or_else(|e| Response::Error { message: format!("the request failed: {e}") }),
                    Err(message) => Response::Error { message },
                }
            } else {
                Response::Error {
                    message: format!(
                        "uid {} is not allowed to change decisions: use root or a member of the control group",
                        peer.uid
                    ),
                }
            }
        }
        Err(e) => Response::Error { message: format!("cannot tell who is asking: {e}") },
    };
    let mut line = serde_json::to_vec(&response).unwrap_or_default();
    line.push(b'\n');
    tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(&line)).await.map_err(std::io::Error::other)??;
    stream.shutdown().await
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(stream.take(MAX_REQUEST_BYTES + 1));
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => return Err("no complete request within 5 s".into()),
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if line.len() as u64 > MAX_REQUEST_BYTES {
        return Err("request too long".into());
    }
    serde_json::from_slice(&line).map_err(|e| format!("malformed request: {e}"))
}

/// Why the client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens there (no socket, or nobody accepts): act on the store directly.
    #[error("no daemon at {}", path.display())]
    NoDaemon {
        /// The socket path.
        path: PathBuf,
    },
    /// The exchange failed.
    #[error("control socket {}: {reason}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Sends `request` to the daemon at `path` and waits (at most 30 s) for its answer.
pub fn request(path: &Path, request: &Request) -> Result<Response, ClientError> {
    use std::os::unix::net::UnixStream as StdStream;
    let io = |reason: String| ClientError::Io { path: path.to_owned(), reason };
    let mut stream = match StdStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Err(ClientError::NoDaemon { path: path.to_owned() });
        }
        Err(e) => return Err(io(e.to_string())),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| io(e.to_string()))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(|e| io(e.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| io(e.to_string()))?;
    line.push(b'\n');
    // A refusal comes before the request is read; the answer is still there to read.
    if let Err(e) = stream.write_all(&line)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(io(e.to_string()));
    }
    let mut answer = Vec::new();
    BufReader::new(std::io::Read::take(&stream, MAX_REQUEST_BYTES))
        .read_until(b'\n', &mut answer)
        .map_err(|e| io(e.to_string()))?;
    serde_json::from_slice(&answer).map_err(|e| io(format!("unreadable answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban() -> Request {
        Request::Ban {
            scope: Scope::Address("203.0.113.7".parse().unwrap()),
            action: Action::Discard,
            duration_secs: Some(60),
            reason: "test".into(),
        }
    }

    /// A server on `dir`/control.sock with `access`, answering NotFound to everything it is
    /// let through; returns the socket path and the stop sender.
    fn server(dir: &Path, access: Access) -> (PathBuf, watch::Sender<bool>, std::thread::JoinHandle<()>) {
        let path = dir.join(SOCKET_NAME);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let bind_path = path.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = bind(&bind_path, None).unwrap();
                ready_tx.send(()).unwrap();
                let handler: Handler = Arc::new(|request, peer| match request {
                    Request::Ban { .. } => Response::Refused { reason: format!("seen from {}", peer.name()) },
                    Request::Unban { .. } => Response::NotFound,
                });
                serve(listener, access, handler, stop_rx).await;
            });
        });
        ready_rx.recv().unwrap();
        (path, stop_tx, thread)
    }

    #[test]
    fn an_allowed_peer_is_served_and_others_refused_by_their_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let me = rustix::process::geteuid().as_raw();
        let (path, stop, thread) = server(dir.path(), Access { uids: vec![me], gid: None });
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
        // A second daemon cannot take over a socket that is being served.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let taken = runtime.block_on(async { bind(&path, None).map(|_| ()) }).unwrap_err();
        assert!(taken.to_string().contains("another running daemon"), "{taken}");
        match request(&path, &ban()).unwrap() {
            Response::Refused { reason } => assert!(reason.starts_with("seen from"), "{reason}"),
            other => panic!("{other:?}"),
        }
        stop.send(true).unwrap();
        thread.join().unwrap();

        // The same client, not on the list: refused whatever it sends.
        let (path, stop, thread) =
            server(dir.path(), Access { uids: vec![me.wrapping_add(4242)], gid: None });
        match request(&path, &ban()).unwrap() {
            Response::Error { message } => assert!(message.contains("not allowed"), "{message}"),
            other => panic!("an unauthorized peer was served: {other:?}"),
        }
        // Allowed by group (its gid, primary or supplementary), not by uid.
        stop.send(true).unwrap();
        thread.join().unwrap();
        let gid = rustix::process::getegid().as_raw();
        let (path, stop, thread) = server(dir.path(), Access { uids: Vec::new(), gid: Some(gid) });
        assert!(matches!(request(&path, &ban()).unwrap(), Response::Refused { .. }));
        // Garbage from an allowed peer is an error, not a crash.
        stop.send(true).unwrap();
        thread.join().unwrap();
        let (path, stop, thread) = server(dir.path(), Access { uids: vec![me], gid: None });
        let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
        raw.write_all(b"{not json\n").unwrap();
        let mut answer = String::new();
        BufReader::new(&raw).read_line(&mut answer).unwrap();
        assert!(answer.contains("malformed"), "{answer}");
        stop.send(true).unwrap();
        thread.join().unwrap();
        // No daemon: the client says so (the CLI then acts on the store).
        std::fs::remove_file(&path).ok();
        assert!(matches!(request(&path, &ban()), Err(ClientError::NoDaemon { .. })));
    }

    /// Run as another user by the test below: connects and prints the answer.
    #[test]
    fn peer_helper() {
        let Some(path) = std::env::var_os("RAMPART_CONTROL_HELPER") else { return };
        let answer = request(Path::new(&path), &ban());
        println!("HELPER-ANSWER {answer:?}");
    }

    #[test]
    fn another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to run a client as another user");
            return;
        }
        // The directory must let `nobody` reach the socket: the refusal must come from the
        // credential check, not from file permissions.
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (path, stop, thread) = server(dir.path(), Access::daemon(None));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        use std::os::unix::process::CommandExt;
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "control::tests::peer_helper", "--nocapture", "--test-threads=1"])
            .env("RAMPART_CONTROL_HELPER", &path)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        stop.send(true).unwrap();
        thread.join().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().find(|l| l.contains("HELPER-ANSWER")).unwrap_or_else(|| {
            panic!("the helper did not run: {stdout} {}", String::from_utf8_lossy(&output.stderr))
        });
        assert!(line.contains("Error") && line.contains("uid 65534 is not allowed"), "{line}");
    }
}
