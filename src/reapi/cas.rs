//! The server's CAS: which blobs it lacks (FindMissingBlobs), uploads in
//! batches (BatchUpdateBlobs) or streamed (ByteStream Write) for large
//! ones, downloads the same two ways. Every blob read from the server is
//! hashed while it arrives and stored only if it is the blob asked for:
//! the server, and anything between, is untrusted.

use super::{Chan, re};
use crate::key::{Digest, Sha256Writer};
use crate::store::cas::Cas;
use bazel_remote_apis::google::bytestream as bs;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// A blob is sent in a batch when it is at most this big…
const BATCH_ITEM: u64 = 1 << 20;
/// …and batches hold at most this many bytes (gRPC's default message
/// limit is 4 MiB).
const BATCH_BYTES: u64 = 3 << 20;
/// ByteStream chunks.
const CHUNK: usize = 1 << 20;
/// Digests per FindMissingBlobs call.
const FIND_CHUNK: usize = 4000;

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum Fault {
    /// The server did not answer (down, unreachable): a local build may
    /// stand in.
    Unreachable(String),
    /// The server answered no, or sent something that is not what was
    /// asked for.
    Refused(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Unreachable(m) | Fault::Refused(m) => f.write_str(m),
        }
    }
}

impl From<tonic::Status> for Fault {
    fn from(s: tonic::Status) -> Fault {
        if super::unreachable(&s) {
            Fault::Unreachable(super::status_line(&s))
        } else {
            Fault::Refused(super::status_line(&s))
        }
    }
}

/// Where an upload's bytes are.
#[derive(Clone, Debug)]
pub enum Src {
    /// A file (a blob of the local store).
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub src: Src,
}

impl Blob {
    pub fn bytes(b: Vec<u8>) -> Blob {
        Blob {
            digest: crate::key::sha256_bytes(&b),
            size: b.len() as u64,
            src: Src::Bytes(Arc::new(b)),
        }
    }

    fn read(&self) -> Result<Vec<u8>, Fault> {
        match &self.src {
            Src::Bytes(b) => Ok(b.as_ref().clone()),
            Src::File(p) => std::fs::read(p)
                .map_err(|e| Fault::Refused(format!("cannot read {}: {e}", p.display()))),
        }
    }
}

fn prefix(instance: &str) -> String {
    if instance.is_empty() {
        String::new()
    } else {
        format!("{instance}/")
    }
}

/// The digests the server lacks.
pub async fn find_missing(
    chan: &Chan,
    instance: &str,
    digests: &[re::Digest],
) -> Result<Vec<re::Digest>, Fault> {
    let mut c = CasClient::new(chan.clone());
    let mut missing = Vec::new();
    for part in digests.chunks(FIND_CHUNK) {
        let r = c
            .find_missing_blobs(super::req(
                re::FindMissingBlobsRequest {
                    instance_name: instance.to_string(),
                    blob_digests: part.to_vec(),
                    digest_function: 0,
                },
                60,
            ))
            .await?;
        missing.extend(r.into_inner().missing_blob_digests);
    }
    Ok(missing)
}

/// Upload the blobs the server lacks; returns how many bytes were sent.
pub async fn upload(chan: &Chan, instance: &str, blobs: &[Blob]) -> Result<u64, Fault> {
    let mut unique: std::collections::BTreeMap<&str, &Blob> = std::collections::BTreeMap::new();
    for b in blobs {
        unique.insert(b.digest.hex(), b);
    }
    let all: Vec<re::Digest> = unique
        .values()
        .map(|b| super::digest(&b.digest, b.size))
        .collect();
    let missing = find_missing(chan, instance, &all).await?;
    let mut sent = 0;
    let mut batch: Vec<re::batch_update_blobs_request::Request> = Vec::new();
    let mut batch_bytes = 0;
    let mut c = CasClient::new(chan.clone());
    for m in &missing {
        let Some(b) = unique.get(m.hash.as_str()) else {
            continue;
        };
        if b.size > BATCH_ITEM {
            write_stream(chan, instance, b).await?;
            sent += b.size;
            continue;
        }
        if batch_bytes + b.size > BATCH_BYTES && !batch.is_empty() {
            send_batch(&mut c, instance, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
        batch.push(re::batch_update_blobs_request::Request {
            digest: Some(m.clone()),
            data: b.read()?,
            compressor: 0,
        });
        batch_bytes += b.size;
        sent += b.size;
    }
    if !batch.is_empty() {
        send_batch(&mut c, instance, batch).await?;
    }
    Ok(sent)
}

async fn send_batch(
    c: &mut CasClient<Chan>,
    instance: &str,
    requests: Vec<re::batch_update_blobs_request::Request>,
) -> Result<(), Fault> {
    let r = c
        .batch_update_blobs(super::req(
            re::BatchUpdateBlobsRequest {
                instance_name: instance.to_string(),
                requests,
                digest_function: 0,
            },
            120,
        ))
        .await?;
    for resp in r.into_inner().responses {
        if let Some(s) = resp.status
            && s.code != 0
        {
            let hash = resp.digest.map(|d| d.hash).unwrap_or_default();
            return Err(Fault::Refused(format!(
                "the server refused blob {hash}: {}",
                s.message
            )));
        }
    }
    Ok(())
}

/// A large blob, streamed in chunks (read from its file as it goes).
async fn write_stream(chan: &Chan, instance: &str, b: &Blob) -> Result<(), Fault> {
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    let resource = format!(
        "{}uploads/{}/blobs/{}/{}",
        prefix(instance),
        hex::encode(id),
        b.digest.hex(),
        b.size
    );
    let size = b.size;
    let reader: Box<dyn std::io::Read + Send> = match &b.src {
        Src::File(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| Fault::Refused(format!("cannot read {}: {e}", p.display())))?,
        ),
        Src::Bytes(v) => Box::new(std::io::Cursor::new(v.as_ref().clone())),
    };
    let state = (reader, 0u64, false);
    let stream = futures_util::stream::unfold(state, move |(mut r, offset, done)| {
        let resource = resource.clone();
        async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                match r.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(_) => break,
                }
            }
            buf.truncate(n);
            let next = offset + n as u64;
            let finish = next >= size || n == 0;
            let msg = bs::WriteRequest {
                resource_name: if offset == 0 { resource } else { String::new() },
                write_offset: offset as i64,
                finish_write: finish,
                data: buf,
            };
            Some((msg, (r, next, finish)))
        }
    });
    let mut c = bs::byte_stream_client::ByteStreamClient::new(chan.clone());
    let mut req = tonic::Request::new(stream);
    req.set_timeout(std::time::Duration::from_secs(1800));
    let r = c.write(req).await?;
    let committed = r.into_inner().committed_size;
    if committed != size as i64 {
        return Err(Fault::Refused(format!(
            "the server kept {committed} of {size} bytes of blob {}",
            b.digest.hex()
        )));
    }
    Ok(())
}

use std::io::Read as _;

/// Read a small blob (a message: an Action, a Command, a Directory, a
/// Tree) whole, checked against its digest; at most `limit` bytes.
pub async fn read_small(
    chan: &Chan,
    instance: &str,
    d: &re::Digest,
    limit: u64,
) -> Result<Vec<u8>, Fault> {
    let (digest, size) = super::from_digest(d).map_err(Fault::Refused)?;
    if size > limit {
        return Err(Fault::Refused(format!(
            "blob {} claims {size} bytes, more than the {limit} allowed here",
            d.hash
        )));
    }
    let mut c = CasClient::new(chan.clone());
    let r = c
        .batch_read_blobs(super::req(
            re::BatchReadBlobsRequest {
                instance_name: instance.to_string(),
                digests: vec![d.clone()],
                acceptable_compressors: vec![],
                digest_function: 0,
            },
            120,
        ))
        .await?;
    let resp =
        r.into_inner().responses.into_iter().next().ok_or_else(|| {
            Fault::Refused(format!("the server sent nothing for blob {}", d.hash))
        })?;
    if let Some(s) = resp.status
        && s.code != 0
    {
        return Err(Fault::Refused(format!(
            "blob {}: {}",
            d.hash,
            if s.message.is_empty() {
                format!("status {}", s.code)
            } else {
                s.message
            }
        )));
    }
    if crate::key::sha256_bytes(&resp.data) != digest || resp.data.len() as u64 != size {
        return Err(Fault::Refused(format!(
            "the server's blob {} does not match its digest",
            d.hash
        )));
    }
    Ok(resp.data)
}

/// Fetch blobs into the local store (those it lacks), each checked
/// against its digest before it is kept. Returns the bytes fetched.
pub async fn fetch_into(
    chan: &Chan,
    instance: &str,
    cas: &Cas,
    digests: &[re::Digest],
) -> Result<u64, Fault> {
    let mut fetched = 0;
    let mut seen = std::collections::HashSet::new();
    for d in digests {
        if !seen.insert(d.hash.clone()) {
            continue;
        }
        let (digest, size) = super::from_digest(d).map_err(Fault::Refused)?;
        if cas.has_blob(&digest) && cas.verify_blob(&digest).is_ok() {
            continue;
        }
        if size <= BATCH_ITEM {
            let bytes = read_small(chan, instance, d, BATCH_ITEM).await?;
            cas.put_bytes(&bytes)
                .map_err(|e| Fault::Refused(format!("cannot store blob {}: {e}", d.hash)))?;
        } else {
            read_stream(chan, instance, cas, &digest, size).await?;
        }
        fetched += size;
    }
    Ok(fetched)
}

async fn read_stream(
    chan: &Chan,
    instance: &str,
    cas: &Cas,
    digest: &Digest,
    size: u64,
) -> Result<(), Fault> {
    let mut c = bs::byte_stream_client::ByteStreamClient::new(chan.clone());
    let resource = format!("{}blobs/{}/{size}", prefix(instance), digest.hex());
    let mut stream = c
        .read(super::req(
            bs::ReadRequest {
                resource_name: resource,
                read_offset: 0,
                read_limit: 0,
            },
            1800,
        ))
        .await?
        .into_inner();
    let store_err =
        |e: crate::store::StoreError| Fault::Refused(format!("cannot store a blob: {e}"));
    let tmp = cas.new_temp().map_err(store_err)?;
    let mut w = Sha256Writer::new(std::io::BufWriter::new(tmp));
    let mut got = 0u64;
    while let Some(msg) = stream.message().await? {
        got += msg.data.len() as u64;
        if got > size {
            return Err(Fault::Refused(format!(
                "the server sent more than the {size} bytes of blob {}",
                digest.hex()
            )));
        }
        w.write_all(&msg.data)
            .map_err(|e| Fault::Refused(format!("cannot store a blob: {e}")))?;
    }
    let (actual, n, buf) = w.finish();
    if &actual != digest || n != size {
        return Err(Fault::Refused(format!(
            "the server's blob {} does not match its digest (got {n} bytes hashing to {})",
            digest.hex(),
            actual.hex()
        )));
    }
    let tmp = buf
        .into_inner()
        .map_err(|e| Fault::Refused(format!("cannot store a blob: {}", e.into_error())))?;
    cas.commit_verified(tmp, digest).map_err(store_err)?;
    Ok(())
}
