//! Logs that stream while a build step runs: the LogStream API
//! (`build.bazel.remote.logstream.v1`) with ByteStream reads and writes.
//!
//! Three parts:
//! - a server, `refine logstream --listen ADDR` ([`serve`]): an REAPI
//!   server configured with it (BuildGrid's `logstream: url:`) creates two
//!   streams per action it hands out, gives the worker their write names
//!   (the `executeoperationmetadata-bin` trailer of UpdateBotSession) and
//!   the client their read names (`stdout_stream_name` of the operation's
//!   metadata). Streams live in memory, bounded: [`MAX_STREAM`] bytes each
//!   (the rest is cut, and said), [`MAX_STREAMS`] at once; a finished one
//!   is forgotten [`KEEP`] after it finished, an abandoned one after
//!   [`STALE`].
//! - the worker's side ([`tail_into`]): the step's log file, followed as
//!   it grows, written to the stream; finished when the step ends.
//! - the client's side ([`follow`]): the stream read as it grows and
//!   appended to the node's log (the file the dashboard's live log, or a
//!   `tail -f` of `refine log --path`, follows).
//!
//! Written here: no crate serves the LogStream API, and BuildGrid 0.4.4
//! only calls one.

use super::Chan;
use bazel_remote_apis::build::bazel::remote::logstream::v1 as ls;
use bazel_remote_apis::google::bytestream as bs;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Most bytes a stream keeps (a build log over it is cut, and says so).
pub const MAX_STREAM: usize = 64 << 20;
/// Most streams at once.
pub const MAX_STREAMS: usize = 10_000;
/// How long a finished stream can still be read.
pub const KEEP: Duration = Duration::from_secs(600);
/// How long an unfinished stream lives without a write.
pub const STALE: Duration = Duration::from_secs(24 * 3600);
/// Bytes per ByteStream message.
const CHUNK: usize = 64 << 10;
/// Most bytes of a parent name.
const MAX_PARENT: usize = 1024;

struct Stream {
    data: Vec<u8>,
    write_token: String,
    done: bool,
    cut: bool,
    touched: Instant,
    changed: tokio::sync::watch::Sender<()>,
}

/// The streams a server holds.
#[derive(Clone, Default)]
pub struct Streams {
    inner: Arc<Mutex<HashMap<String, Stream>>>,
}

fn token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stream>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream under `parent`: its read name and its write name
    /// (`{name}/{secret}`).
    pub fn create(&self, parent: &str) -> Result<ls::LogStream, Status> {
        if parent.len() > MAX_PARENT || parent.chars().any(char::is_control) {
            return Err(Status::invalid_argument(
                "the parent is too long or holds control characters",
            ));
        }
        let mut m = self.lock();
        let now = Instant::now();
        m.retain(|_, s| {
            let idle = now.duration_since(s.touched);
            if s.done { idle < KEEP } else { idle < STALE }
        });
        if m.len() >= MAX_STREAMS {
            return Err(Status::resource_exhausted(format!(
                "{MAX_STREAMS} log streams are open"
            )));
        }
        let parent = parent.trim_end_matches('/');
        let id = token();
        let name = if parent.is_empty() {
            format!("logstreams/{id}")
        } else {
            format!("{parent}/logstreams/{id}")
        };
        let write_token = token();
        let write_resource_name = format!("{name}/{write_token}");
        m.insert(
            name.clone(),
            Stream {
                data: Vec::new(),
                write_token,
                done: false,
                cut: false,
                touched: now,
                changed: tokio::sync::watch::channel(()).0,
            },
        );
        Ok(ls::LogStream {
            name,
            write_resource_name,
        })
    }

    /// Append to the stream a write name names; the bytes it holds.
    fn append(
        &self,
        write_name: &str,
        offset: i64,
        data: &[u8],
        finish: bool,
    ) -> Result<i64, Status> {
        let (name, secret) = write_name
            .rsplit_once('/')
            .ok_or_else(|| Status::invalid_argument("not a log stream's write name"))?;
        let mut m = self.lock();
        let s = m
            .get_mut(name)
            .ok_or_else(|| Status::not_found(format!("no log stream {name}")))?;
        use subtle::ConstantTimeEq;
        if !bool::from(s.write_token.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(Status::permission_denied("not this stream's write name"));
        }
        if s.done {
            return Err(Status::failed_precondition("the stream is finished"));
        }
        if !s.cut && offset != s.data.len() as i64 {
            return Err(Status::out_of_range(format!(
                "write at {offset}, the stream holds {} bytes",
                s.data.len()
            )));
        }
        if !s.cut {
            let room = MAX_STREAM - s.data.len();
            if data.len() > room {
                s.data.extend_from_slice(&data[..room]);
                s.data.extend_from_slice(
                    format!("\n[log stream: cut at {} MiB]\n", MAX_STREAM >> 20).as_bytes(),
                );
                s.cut = true;
            } else {
                s.data.extend_from_slice(data);
            }
        }
        s.done = finish;
        s.touched = Instant::now();
        s.changed.send_replace(());
        Ok(if s.cut {
            // What the writer sent, so that it goes on (and ends) as usual.
            offset + data.len() as i64
        } else {
            s.data.len() as i64
        })
    }

    /// The bytes from `offset` (at most one chunk), whether the stream is
    /// finished, and a receiver told of the next change.
    fn read_at(
        &self,
        name: &str,
        offset: usize,
    ) -> Result<(Vec<u8>, bool, tokio::sync::watch::Receiver<()>), Status> {
        let m = self.lock();
        let s = m
            .get(name)
            .ok_or_else(|| Status::not_found(format!("no log stream {name}")))?;
        let rx = s.changed.subscribe();
        let end = s.data.len().min(offset.saturating_add(CHUNK));
        let bytes = s.data.get(offset..end).unwrap_or_default().to_vec();
        Ok((bytes, s.done, rx))
    }

    fn status(&self, write_name: &str) -> Result<(i64, bool), Status> {
        let name = write_name.rsplit_once('/').map_or(write_name, |(n, _)| n);
        let m = self.lock();
        let s = m
            .get(name)
            .ok_or_else(|| Status::not_found(format!("no log stream {name}")))?;
        Ok((s.data.len() as i64, s.done))
    }
}

#[tonic::async_trait]
impl ls::log_stream_service_server::LogStreamService for Streams {
    async fn create_log_stream(
        &self,
        request: Request<ls::CreateLogStreamRequest>,
    ) -> Result<Response<ls::LogStream>, Status> {
        self.create(&request.into_inner().parent).map(Response::new)
    }
}

type ReadStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bs::ReadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl bs::byte_stream_server::ByteStream for Streams {
    type ReadStream = ReadStream;

    async fn read(
        &self,
        request: Request<bs::ReadRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        let r = request.into_inner();
        let offset = usize::try_from(r.read_offset)
            .map_err(|_| Status::out_of_range("a negative read offset"))?;
        // Unknown names fail the call itself, not its first message.
        self.read_at(&r.resource_name, offset)?;
        let limit = usize::try_from(r.read_limit).unwrap_or(0);
        let state = (self.clone(), r.resource_name, offset, 0usize);
        let s =
            futures_util::stream::unfold(state, move |(st, name, mut at, mut sent)| async move {
                loop {
                    // `at` is usize::MAX once an error has been sent: the end.
                    if at == usize::MAX || (limit > 0 && sent >= limit) {
                        return None;
                    }
                    let (mut bytes, done, mut rx) = match st.read_at(&name, at) {
                        Ok(x) => x,
                        Err(e) => return Some((Err(e), (st, name, usize::MAX, sent))),
                    };
                    if !bytes.is_empty() {
                        if limit > 0 {
                            bytes.truncate(limit - sent);
                        }
                        at += bytes.len();
                        sent += bytes.len();
                        return Some((Ok(bs::ReadResponse { data: bytes }), (st, name, at, sent)));
                    }
                    if done {
                        return None;
                    }
                    // Wait for more (bounded: a writer that went away leaves
                    // the stream to expire).
                    match tokio::time::timeout(STALE, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => return None,
                    }
                }
            });
        Ok(Response::new(Box::pin(s)))
    }

    async fn write(
        &self,
        request: Request<tonic::Streaming<bs::WriteRequest>>,
    ) -> Result<Response<bs::WriteResponse>, Status> {
        let mut msgs = request.into_inner();
        let mut name = String::new();
        let mut committed = 0;
        while let Some(w) = msgs.message().await? {
            if name.is_empty() {
                name = w.resource_name.clone();
            }
            committed = self.append(&name, w.write_offset, &w.data, w.finish_write)?;
            if w.finish_write {
                break;
            }
        }
        Ok(Response::new(bs::WriteResponse {
            committed_size: committed,
        }))
    }

    async fn query_write_status(
        &self,
        request: Request<bs::QueryWriteStatusRequest>,
    ) -> Result<Response<bs::QueryWriteStatusResponse>, Status> {
        let (committed_size, complete) = self.status(&request.into_inner().resource_name)?;
        Ok(Response::new(bs::QueryWriteStatusResponse {
            committed_size,
            complete,
        }))
    }
}

/// Serve log streams on `listen` until interrupted.
pub fn serve(listen: std::net::SocketAddr, say: &dyn Fn(&str)) -> Result<(), String> {
    crate::exec::interrupt::install();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("refine-logstream")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let at = listener.local_addr().map_err(|e| e.to_string())?;
        say(&format!("serving log streams on {at}"));
        let incoming = futures_util::stream::unfold(listener, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        });
        let streams = Streams::default();
        let stop = async {
            while !crate::exec::interrupt::requested() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tonic::transport::Server::builder()
            .add_service(ls::log_stream_service_server::LogStreamServiceServer::new(
                streams.clone(),
            ))
            .add_service(bs::byte_stream_server::ByteStreamServer::new(streams))
            .serve_with_incoming_shutdown(incoming, stop)
            .await
            .map_err(|e| format!("the log stream server stopped: {e}"))
    })?;
    say("stopped");
    Ok(())
}

/// The worker's side: follow `path` as the step writes it and send it to
/// the stream `write_name` names, every quarter second, until `finished`
/// says the step ended; then the rest, and the stream is finished. The
/// bytes sent.
pub async fn tail_into(
    chan: Chan,
    write_name: String,
    path: PathBuf,
    mut finished: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<bs::WriteRequest>(8);
    let messages =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut client = bs::byte_stream_client::ByteStreamClient::new(chan);
    let call = tokio::spawn(async move { client.write(messages).await });
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut offset = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let last = *finished.borrow_and_update();
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            let m = bs::WriteRequest {
                resource_name: write_name.clone(),
                write_offset: offset as i64,
                finish_write: false,
                data: buf[..n].to_vec(),
            };
            offset += n as u64;
            if tx.send(m).await.is_err() {
                break;
            }
        }
        if last {
            let _ = tx
                .send(bs::WriteRequest {
                    resource_name: write_name.clone(),
                    write_offset: offset as i64,
                    finish_write: true,
                    data: Vec::new(),
                })
                .await;
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(250), finished.changed()).await;
    }
    drop(tx);
    match call.await {
        Ok(Ok(_)) => Ok(offset),
        Ok(Err(s)) => Err(super::status_line(&s)),
        Err(e) => Err(e.to_string()),
    }
}

/// The client's side: read the stream `name` names as it grows and append
/// it to `log`, counting the bytes in `got`. Why it stopped early, if it
/// did.
pub async fn follow(
    chan: Chan,
    name: String,
    mut log: std::fs::File,
    got: Arc<std::sync::atomic::AtomicU64>,
) -> Option<String> {
    let mut client = bs::byte_stream_client::ByteStreamClient::new(chan);
    let stream = client
        .read(Request::new(bs::ReadRequest {
            resource_name: name,
            read_offset: 0,
            read_limit: 0,
        }))
        .await;
    let mut stream = match stream {
        Ok(s) => s.into_inner(),
        Err(s) => return Some(super::status_line(&s)),
    };
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                if log.write_all(&m.data).is_err() {
                    return Some("cannot write the log".into());
                }
                got.fetch_add(m.data.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(None) => return None,
            Err(s) => return Some(super::status_line(&s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_written_by_its_write_name_only_and_read_as_it_grows() {
        let s = Streams::default();
        let l = s.create("inst/abc_stdout").unwrap();
        assert!(
            l.name.starts_with("inst/abc_stdout/logstreams/"),
            "{}",
            l.name
        );
        assert!(l.write_resource_name.starts_with(&l.name));
        assert_ne!(l.write_resource_name, l.name);
        // The read name does not write; a guessed token does not either.
        assert!(s.append(&l.name, 0, b"x", false).is_err());
        assert_eq!(
            s.append(&format!("{}/{}", l.name, "0".repeat(32)), 0, b"x", false)
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            s.append(&l.write_resource_name, 0, b"hello ", false)
                .unwrap(),
            6
        );
        let (b, done, _) = s.read_at(&l.name, 0).unwrap();
        assert_eq!((b.as_slice(), done), (&b"hello "[..], false));
        // Writes go on where the stream ends, not elsewhere.
        assert_eq!(
            s.append(&l.write_resource_name, 3, b"x", false)
                .unwrap_err()
                .code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            s.append(&l.write_resource_name, 6, b"world", true).unwrap(),
            11
        );
        let (b, done, _) = s.read_at(&l.name, 6).unwrap();
        assert_eq!((b.as_slice(), done), (&b"world"[..], true));
        assert!(s.append(&l.write_resource_name, 11, b"!", false).is_err());
        assert_eq!(
            s.read_at("inst/logstreams/none", 0).unwrap_err().code(),
            tonic::Code::NotFound
        );
        assert!(s.create(&"p".repeat(MAX_PARENT + 1)).is_err());
        assert!(s.create("a\nb").is_err());
    }

    #[test]
    fn a_stream_over_its_bound_is_cut_and_says_so() {
        let s = Streams::default();
        let l = s.create("").unwrap();
        assert!(l.name.starts_with("logstreams/"));
        let big = vec![b'a'; MAX_STREAM - 10];
        s.append(&l.write_resource_name, 0, &big, false).unwrap();
        // The writer goes on as usual; the stream keeps its bound.
        let n = s
            .append(
                &l.write_resource_name,
                big.len() as i64,
                &[b'b'; 100],
                false,
            )
            .unwrap();
        assert_eq!(n, big.len() as i64 + 100);
        s.append(&l.write_resource_name, n, b"more", true).unwrap();
        let held = s.lock()[&l.name].data.len();
        assert!(held < MAX_STREAM + 100, "{held}");
        let (tail, done, _) = s.read_at(&l.name, MAX_STREAM - 10).unwrap();
        assert!(String::from_utf8_lossy(&tail).contains("cut at 64 MiB"));
        assert!(done);
    }

    #[test]
    fn a_worker_tails_its_log_into_a_stream_a_client_follows() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let streams = Streams::default();
        let server = streams.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            listener.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let incoming = futures_util::stream::unfold(l, |l| async move {
                Some((l.accept().await.map(|(s, _)| s), l))
            });
            tonic::transport::Server::builder()
                .add_service(ls::log_stream_service_server::LogStreamServiceServer::new(
                    server.clone(),
                ))
                .add_service(bs::byte_stream_server::ByteStreamServer::new(server))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        let l = streams.create("job").unwrap();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("log");
        std::fs::write(&path, "line 1\n").unwrap();
        let out = d.path().join("client.log");
        let (fin_tx, fin_rx) = tokio::sync::watch::channel(false);
        let chan = rt.block_on(async {
            let c = tonic::transport::Endpoint::from_shared(format!("http://{at}"))
                .unwrap()
                .connect_lazy();
            tonic::service::interceptor::InterceptedService::new(
                c,
                super::super::headers(&[], None).unwrap(),
            )
        });
        let writer = rt.spawn(tail_into(
            chan.clone(),
            l.write_resource_name.clone(),
            path.clone(),
            fin_rx,
        ));
        let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = rt.spawn(follow(
            chan,
            l.name.clone(),
            std::fs::File::create(&out).unwrap(),
            got.clone(),
        ));
        // The first line arrives while the "step" still runs.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&out).unwrap_or_default() != "line 1\n" {
            assert!(Instant::now() < deadline, "the first line never came");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"line 2\n")
            .unwrap();
        fin_tx.send(true).unwrap();
        assert_eq!(rt.block_on(writer).unwrap().unwrap(), 14);
        assert_eq!(rt.block_on(reader).unwrap(), None);
        assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 14);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "line 1\nline 2\n");
        let _ = stop_tx.send(());
    }
}
