//! The client side of the control file: one JSON request to `MOUNT/.chunkfs/ctl`, one JSON
//! response back.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Send `req` to the chunkfs mounted at `mnt` and return its result, or its error as ours.
pub fn request(mnt: &Path, req: &Value) -> Result<Value> {
    let path = mnt.join(".chunkfs").join("ctl");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the control file {}", path.display()))?;
    f.write_all(serde_json::to_string(req)?.as_bytes())
        .with_context(|| format!("cannot write to {}", path.display()))?;
    // The reply is read from offset 0, not from where the request ended.
    f.seek(SeekFrom::Start(0))?;
    let mut out = String::new();
    f.read_to_string(&mut out)
        .with_context(|| format!("cannot read the reply from {}", path.display()))?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("{} replied with something other than JSON", path.display()))?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(v.get("result").cloned().unwrap_or(Value::Null));
    }
    bail!(
        "{}",
        v.get("error")
            .and_then(Value::as_str)
            .unwrap_or("the filesystem refused the request")
    )
}
