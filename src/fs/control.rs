//! The conduit `/.chunkfs/ctl`: open it, write one JSON request, read the JSON response.
//! Every special operation the CLI offers goes through here on a mounted filesystem; the
//! protocol is documented in docs/CONTROL.md.
//!
//! A request is executed when the response is first read, so a request may arrive in several
//! writes. The response is `{"ok": true, "result": ...}` or
//! `{"ok": false, "errno": N, "error": "message"}`. Offsets are ignored: writes append to the
//! request and reads continue from where the last one ended, so a shell can `printf >&3` and
//! then `cat <&3` on one descriptor (whose offset stands at the end of the request).

use super::error::{FsError, Result};
use super::{Fh, Inner};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Conduit {
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    /// How much of the response has been read.
    read: usize,
}

/// Requests are small; refuse anything that is not.
const MAX_REQUEST: usize = 1 << 20;

impl Inner {
    pub(super) fn conduit_write(&self, fh: Fh, _offset: u64, data: &[u8]) -> Result<u32> {
        let mut conduits = self.conduits.lock().unwrap();
        let c = conduits.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
        if c.response.is_some() {
            return Err(FsError::Invalid); // one request per open
        }
        if c.request.len() + data.len() > MAX_REQUEST {
            return Err(FsError::TooBig);
        }
        c.request.extend_from_slice(data);
        Ok(data.len() as u32)
    }

    pub(super) fn conduit_read(&self, fh: Fh, _offset: u64, size: u32) -> Result<Vec<u8>> {
        let request = {
            let mut conduits = self.conduits.lock().unwrap();
            let c = conduits.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
            match &c.response {
                Some(_) => None,
                None => Some(std::mem::take(&mut c.request)),
            }
        };
        if let Some(req) = request {
            // Run without holding the conduit map: a request may take long (fsck, gc).
            let resp = self.control(&req);
            let mut bytes = serde_json::to_vec(&resp).unwrap_or_default();
            bytes.push(b'\n');
            if let Some(c) = self.conduits.lock().unwrap().get_mut(&fh.0) {
                c.response = Some(bytes);
            }
        }
        let mut conduits = self.conduits.lock().unwrap();
        let c = conduits.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
        let resp = c.response.as_ref().ok_or(FsError::BadHandle)?;
        let start = c.read.min(resp.len());
        let end = (start + size as usize).min(resp.len());
        c.read = end;
        Ok(resp[start..end].to_vec())
    }

    /// Execute one JSON request and build its response.
    pub fn control(&self, request: &[u8]) -> Value {
        let parsed: std::result::Result<Value, _> = serde_json::from_slice(request);
        let result = match parsed {
            Ok(req) => self.dispatch(&req),
            Err(e) => Err(Failure::new(
                FsError::Invalid,
                format!("the request is not JSON: {e}"),
            )),
        };
        match result {
            Ok(v) => json!({"ok": true, "result": v}),
            Err(f) => json!({"ok": false, "errno": f.errno, "error": f.message}),
        }
    }

    fn dispatch(&self, req: &Value) -> std::result::Result<Value, Failure> {
        let op = req
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::new(FsError::Invalid, "missing \"op\"".into()))?;
        let s = |k: &str| -> std::result::Result<&str, Failure> {
            req.get(k).and_then(Value::as_str).ok_or_else(|| {
                Failure::new(FsError::Invalid, format!("{op}: missing string \"{k}\""))
            })
        };
        let v = match op {
            "stats" => to_value(self.stats()?),
            "sync" => {
                self.sync_all()?;
                json!({"seq": self.current_seq().0})
            }
            "log" => to_value(self.log(s("path")?)?),
            "resolve" => {
                let seq = self.resolve_target(req)?;
                json!({"seq": seq.0})
            }
            "snapshot-create" => {
                let path = req.get("path").and_then(Value::as_str).unwrap_or("/");
                to_value(self.snapshot_create(s("name")?, path)?)
            }
            "snapshot-list" => to_value(self.snapshot_list()?),
            "snapshot-delete" => {
                self.snapshot_delete(s("name")?)?;
                json!({})
            }
            "clone" => to_value(self.clone_path(s("src")?, s("dst")?)?),
            "revert" => {
                let seq = self.resolve_target(req)?;
                to_value(self.revert(s("path")?, seq)?)
            }
            "fsck" => {
                let quick = req.get("quick").and_then(Value::as_bool).unwrap_or(false);
                match req.get("repair_from").and_then(Value::as_str) {
                    Some(dir) => to_value(self.fsck_repair_from(dir.as_ref(), quick)?),
                    None => to_value(self.fsck_online(quick)?),
                }
            }
            "gc" => to_value(self.gc(&crate::gc::Silent)?),
            "defrag" => {
                let ino = self.resolve(s("path")?, super::tree::When::Now)?;
                to_value(self.defrag(ino, &|_, _| {})?)
            }
            _ => return Err(Failure::new(FsError::Invalid, format!("unknown op {op:?}"))),
        };
        Ok(v)
    }

    /// The seq a request names with "seq", "time" (ISO 8601 or @unix) or "snapshot".
    fn resolve_target(&self, req: &Value) -> std::result::Result<crate::meta::Seq, Failure> {
        use super::special::{Point, parse_point};
        if let Some(seq) = req.get("seq").and_then(Value::as_u64) {
            return Ok(self.resolve_point(Point::Seq(crate::meta::Seq(seq)))?);
        }
        if let Some(t) = req.get("time").and_then(Value::as_str) {
            let p = parse_point(t)
                .ok_or_else(|| Failure::new(FsError::Invalid, format!("cannot read time {t:?}")))?;
            return Ok(self.resolve_point(p)?);
        }
        if let Some(name) = req.get("snapshot").and_then(Value::as_str) {
            return Ok(self.snapshot_seq(name)?);
        }
        Err(Failure::new(
            FsError::Invalid,
            "give \"seq\", \"time\" or \"snapshot\"".into(),
        ))
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// An error as the conduit reports it.
struct Failure {
    errno: i32,
    message: String,
}

impl Failure {
    fn new(e: FsError, message: String) -> Failure {
        Failure {
            errno: e.errno(),
            message,
        }
    }
}

impl From<FsError> for Failure {
    fn from(e: FsError) -> Failure {
        Failure {
            errno: e.errno(),
            message: e.to_string(),
        }
    }
}
