//! A minimal Hugging Face hub on 127.0.0.1 for the download tests.
//!
//! It speaks just enough HTTP/1.1 (one request per connection, `Connection: close`) and mimics
//! the hub's URL layout and headers as hf-hub 0.4.3 uses them:
//!
//! * `GET /api/models/{owner}/{name}/revision/{rev}[?blobs=true]` -> JSON with `sha` and
//!   `siblings` (`rfilename`, `size`, `blobId`, and `lfs` for `.safetensors` files);
//! * `GET /{owner}/{name}/resolve/{rev}/{file}` -> the file with `ETag` and `X-Repo-Commit`,
//!   honouring `Range` (hf-hub probes with `bytes=0-0` and reads `Content-Range` for the size,
//!   then resumes with `bytes={n}-`); LFS files answer `302` to a `/cdn/...` URL with
//!   `X-Linked-Etag`, as the real hub does;
//! * errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`).
//!
//! Knobs simulate the failures the tests need: the whole server down (connections dropped
//! without an answer), a transfer that breaks off half way, a listed size that does not match,
//! and repositories that need a token.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Files of a fixture repository, by repo path.
pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct Repo {
    sha: String,
    files: Files,
    token: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, Repo>,
    requests: usize,
    served: Vec<String>,
    down: bool,
    truncate: HashSet<String>,
    listed_size: HashMap<String, u64>,
}

/// The server; stops when dropped.
pub struct HubServer {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HubServer {
    pub fn start() -> Self {
        // hf-hub's HTTP client (ureq 2) sends everything through a proxy named in the
        // environment and ignores NO_PROXY, which would divert requests to 127.0.0.1.
        for var in [
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
        ] {
            if std::env::var_os(var).is_some() {
                eprintln!("warning: {var} is set; the hub tests need direct access to 127.0.0.1");
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let endpoint = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, endpoint) = (state.clone(), stop.clone(), endpoint.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, endpoint) = (state.clone(), endpoint.clone());
                    std::thread::spawn(move || {
                        let _ = handle(stream, &state, &endpoint);
                    });
                }
            })
        };
        HubServer {
            endpoint,
            state,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    /// Adds or replaces a repository.
    pub fn add_repo(&self, repo_id: &str, sha: &str, files: Files) {
        let mut state = self.state.lock().unwrap();
        let token = state.repos.get(repo_id).and_then(|r| r.token.clone());
        state.repos.insert(
            repo_id.to_string(),
            Repo {
                sha: sha.to_string(),
                files,
                token,
            },
        );
    }

    /// Makes a repository private: requests need `Authorization: Bearer {token}`.
    pub fn require_token(&self, repo_id: &str, token: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(repo) = state.repos.get_mut(repo_id) {
            repo.token = Some(token.to_string());
        }
    }

    /// Drops every connection without an answer (as if the hub were unreachable).
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Breaks off transfers of `file` half way.
    pub fn set_truncate(&self, file: &str, truncate: bool) {
        let mut state = self.state.lock().unwrap();
        if truncate {
            state.truncate.insert(file.to_string());
        } else {
            state.truncate.remove(file);
        }
    }

    /// Lists `file` with a wrong size in the repository info.
    pub fn set_listed_size(&self, file: &str, size: u64) {
        self.state
            .lock()
            .unwrap()
            .listed_size
            .insert(file.to_string(), size);
    }

    /// Requests received so far (any path).
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// How many times the content of `file` was sent (size probes not counted).
    pub fn served(&self, file: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.served.iter().filter(|f| *f == file).count()
    }

    /// Every file whose content was sent, in order.
    pub fn served_files(&self) -> Vec<String> {
        self.state.lock().unwrap().served.clone()
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stable content hash (FNV-1a, two seeds) used as blob ids and etags.
pub fn content_id(bytes: &[u8], seed: u64) -> String {
    let mut parts = Vec::new();
    for salt in [seed, seed ^ 0x9e37_79b9_7f4a_7c15] {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        parts.push(format!("{h:016x}"));
    }
    parts.concat()
}

/// The git blob id the hub would list (`blobId`, the etag of regular files).
pub fn blob_id(bytes: &[u8]) -> String {
    content_id(bytes, 1)
}

/// The LFS sha256 stand-in (the cached blob name of LFS files).
pub fn lfs_id(bytes: &[u8]) -> String {
    content_id(bytes, 2)
}

fn is_lfs(path: &str) -> bool {
    path.ends_with(".safetensors")
}

fn handle(stream: TcpStream, state: &Mutex<State>, endpoint: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut out = stream;
    {
        let mut st = state.lock().unwrap();
        st.requests += 1;
        if st.down {
            drop(st);
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").replace("%2F", "/");
    let range = headers.get("range").cloned();
    let auth = headers.get("authorization").cloned();
    if method != "GET" && method != "HEAD" {
        return respond(&mut out, 405, &[], b"", None);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    let st = state.lock().unwrap();
    let allowed = |repo: &Repo| match &repo.token {
        None => true,
        Some(t) => auth.as_deref() == Some(&format!("Bearer {t}")),
    };
    let not_found = |code: &str| {
        (
            404u16,
            vec![
                ("X-Error-Code".to_string(), code.to_string()),
                ("X-Error-Message".to_string(), format!("{code} (test hub)")),
            ],
        )
    };

    // GET /api/models/{owner}/{name}/revision/{rev...}
    if segments.len() >= 6
        && segments[0] == "api"
        && segments[1] == "models"
        && segments[4] == "revision"
    {
        let repo_id = format!("{}/{}", segments[2], segments[3]);
        let rev = segments[5..].join("/");
        let Some(repo) = st.repos.get(&repo_id).filter(|r| allowed(r)) else {
            let (status, h) = not_found("RepoNotFound");
            drop(st);
            return respond(&mut out, status, &h, b"{}", None);
        };
        if rev != "main" && rev != repo.sha {
            let (status, h) = not_found("RevisionNotFound");
            drop(st);
            return respond(&mut out, status, &h, b"{}", None);
        }
        let siblings: Vec<String> = repo
            .files
            .iter()
            .map(|(name, bytes)| {
                let size = st
                    .listed_size
                    .get(name)
                    .copied()
                    .unwrap_or(bytes.len() as u64);
                let lfs = if is_lfs(name) {
                    format!(
                        r#","lfs":{{"sha256":"{}","size":{size},"pointerSize":134}}"#,
                        lfs_id(bytes)
                    )
                } else {
                    String::new()
                };
                format!(
                    r#"{{"rfilename":"{name}","size":{size},"blobId":"{}"{lfs}}}"#,
                    blob_id(bytes)
                )
            })
            .collect();
        let body = format!(
            r#"{{"id":"{repo_id}","modelId":"{repo_id}","sha":"{}","private":false,"siblings":[{}]}}"#,
            repo.sha,
            siblings.join(",")
        );
        drop(st);
        return respond(
            &mut out,
            200,
            &[("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
            None,
        );
    }

    // GET /cdn/{owner}/{name}/{file...}  (where LFS files are redirected)
    if segments.len() >= 4 && segments[0] == "cdn" {
        let repo_id = format!("{}/{}", segments[1], segments[2]);
        let file = segments[3..].join("/");
        let Some(bytes) = st
            .repos
            .get(&repo_id)
            .and_then(|r| r.files.get(&file))
            .cloned()
        else {
            drop(st);
            return respond(&mut out, 404, &[], b"", None);
        };
        let truncate = st.truncate.contains(&file);
        drop(st);
        return serve_bytes(
            &mut out,
            state,
            &file,
            &bytes,
            range.as_deref(),
            Vec::new(),
            truncate,
        );
    }

    // GET /{owner}/{name}/resolve/{rev}/{file...}
    if segments.len() >= 5 && segments[2] == "resolve" {
        let repo_id = format!("{}/{}", segments[0], segments[1]);
        let rev = segments[3];
        let file = segments[4..].join("/");
        let Some(repo) = st.repos.get(&repo_id).filter(|r| allowed(r)) else {
            let (status, h) = not_found("RepoNotFound");
            drop(st);
            return respond(&mut out, status, &h, b"", None);
        };
        if rev != "main" && rev != repo.sha {
            let (status, h) = not_found("RevisionNotFound");
            drop(st);
            return respond(&mut out, status, &h, b"", None);
        }
        let Some(bytes) = repo.files.get(&file).cloned() else {
            let (status, h) = not_found("EntryNotFound");
            drop(st);
            return respond(&mut out, status, &h, b"", None);
        };
        let commit = repo.sha.clone();
        let truncate = st.truncate.contains(&file);
        drop(st);
        if is_lfs(&file) {
            let headers = vec![
                (
                    "Location".to_string(),
                    format!("{endpoint}/cdn/{repo_id}/{file}"),
                ),
                ("ETag".to_string(), format!("\"{}\"", blob_id(&bytes))),
                (
                    "X-Linked-Etag".to_string(),
                    format!("\"{}\"", lfs_id(&bytes)),
                ),
                ("X-Linked-Size".to_string(), bytes.len().to_string()),
                ("X-Repo-Commit".to_string(), commit),
            ];
            return respond(&mut out, 302, &headers, b"", None);
        }
        let headers = vec![
            ("ETag".to_string(), format!("\"{}\"", blob_id(&bytes))),
            ("X-Repo-Commit".to_string(), commit),
        ];
        return serve_bytes(
            &mut out,
            state,
            &file,
            &bytes,
            range.as_deref(),
            headers,
            truncate,
        );
    }

    drop(st);
    respond(&mut out, 404, &[], b"", None)
}

/// Sends `bytes` (or the requested range of them), recording real transfers.
fn serve_bytes(
    out: &mut TcpStream,
    state: &Mutex<State>,
    file: &str,
    bytes: &[u8],
    range: Option<&str>,
    mut headers: Vec<(String, String)>,
    truncate: bool,
) -> std::io::Result<()> {
    let len = bytes.len();
    let probe = range == Some("bytes=0-0");
    let (status, start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let start: usize = a.parse().unwrap_or(0);
            let end: usize = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse::<usize>().unwrap_or(len).min(len.saturating_sub(1))
            };
            if start >= len && len > 0 {
                headers.push(("Content-Range".into(), format!("bytes */{len}")));
                return respond(out, 416, &headers, b"", None);
            }
            headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
            (206, start, if len == 0 { 0 } else { end + 1 })
        }
        None => (200, 0, len),
    };
    headers.push(("Accept-Ranges".into(), "bytes".into()));
    let body = &bytes[start..end];
    if !probe {
        state.lock().unwrap().served.push(file.to_string());
    }
    let cut = (truncate && !probe).then_some(body.len() / 2);
    respond(out, status, &headers, body, cut)
}

/// Writes a response; with `cut`, only that many body bytes are sent before the connection
/// is closed (a transfer that breaks off).
fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    cut: Option<usize>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&body[..cut.unwrap_or(body.len()).min(body.len())])?;
    out.flush()?;
    out.shutdown(Shutdown::Both)
}

/// Bytes of a valid safetensors file with one F32 tensor `name` holding `values`.
pub fn safetensors(name: &str, values: &[f32]) -> Vec<u8> {
    let n = values.len();
    let mut header = format!(
        r#"{{"{name}":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        4 * n
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// A tiny model repository in the released layout: configs, tokenizer files, weights, a
/// `speech_tokenizer/` part, and files the engine must not download.
pub fn tiny_model() -> Files {
    let mut files = Files::new();
    let mut put = |name: &str, bytes: Vec<u8>| {
        files.insert(name.to_string(), bytes);
    };
    put(
        "config.json",
        br#"{"model_type": "qwen3_asr", "hidden_size": 8}"#.to_vec(),
    );
    put(
        "generation_config.json",
        br#"{"max_new_tokens": 16}"#.to_vec(),
    );
    put(
        "preprocessor_config.json",
        br#"{"sampling_rate": 16000}"#.to_vec(),
    );
    put(
        "tokenizer_config.json",
        br#"{"model_max_length": 64}"#.to_vec(),
    );
    put("vocab.json", br#"{"a": 0, "b": 1, "ab": 2}"#.to_vec());
    put("merges.txt", b"#version: 0.2\na b\n".to_vec());
    put(
        "model.safetensors",
        safetensors("w", &(0..4096).map(|i| i as f32).collect::<Vec<_>>()),
    );
    put(
        "speech_tokenizer/config.json",
        br#"{"codebook_size": 16}"#.to_vec(),
    );
    put(
        "speech_tokenizer/model.safetensors",
        safetensors("codebook", &[1.0, 2.0, 3.0]),
    );
    put("README.md", b"# tiny model\n".to_vec());
    put(".gitattributes", b"*.safetensors filter=lfs\n".to_vec());
    put("assets/logo.png", vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3]);
    put("pytorch_model.bin", vec![7; 64]);
    files
}

/// Files of [`tiny_model`] that the engine downloads.
pub const NEEDED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "model.safetensors",
    "speech_tokenizer/config.json",
    "speech_tokenizer/model.safetensors",
];

/// Files of [`tiny_model`] that must never be fetched.
pub const SKIPPED: &[&str] = &[
    "README.md",
    ".gitattributes",
    "assets/logo.png",
    "pytorch_model.bin",
];

/// A sharded variant: index plus two shards (and the usual configs).
pub fn sharded_model() -> Files {
    let mut files = tiny_model();
    files.remove("model.safetensors");
    files.insert(
        "model.safetensors.index.json".into(),
        br#"{"metadata": {"total_size": 24}, "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors"}}"#
            .to_vec(),
    );
    files.insert(
        "model-00001-of-00002.safetensors".into(),
        safetensors("a", &[1.0, 2.0]),
    );
    files.insert(
        "model-00002-of-00002.safetensors".into(),
        safetensors("b", &[3.0, 4.0, 5.0]),
    );
    files
}

/// A 40-character commit hash made from `seed`.
pub fn commit(seed: char) -> String {
    std::iter::repeat_n(seed, 40).collect()
}
