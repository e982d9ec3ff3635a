//! The conduit `/.chunkfs/ctl`: open it, write one JSON request, read the JSON response.
//! Every special operation the CLI offers goes through here on a mounted filesystem; the
//! protocol is documented in docs/CONTROL.md, who may do what in docs/SECURITY.md.
//!
//! A request is executed when the response is first read, so a request may arrive in several
//! writes. The response is `{"ok": true, "result": ...}` or
//! `{"ok": false, "errno": N, "error": "message"}`. Offsets are ignored: writes append to the
//! request and reads continue from where the last one ended, so a shell can `printf >&3` and
//! then `cat <&3` on one descriptor (whose offset stands at the end of the request).
//!
//! A request acts for the user who opened the conduit: its credentials are taken at open,
//! and every write and read on that handle must come from the same uid and gid (`EPERM`
//! otherwise), so a descriptor handed to another user carries no one's rights but its own.

use super::caller::{Caller, Credentials};
use super::error::{FsError, Result};
use super::progress::Meter;
use super::request::{self, At, Request};
use super::{Fh, Inner};
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct Conduit {
    /// Who opened it: the request acts for them.
    caller: Caller,
    /// The thread that opened it, which its progress entry names (`fs::progress`).
    pid: u32,
    request: Vec<u8>,
    /// The request grew past `MAX_REQUEST`: its answer is `EFBIG` whatever else arrives.
    too_big: bool,
    /// A read is executing the request.
    running: bool,
    /// The request came in names under `/.chunkfs/ask`: only one that changes nothing runs.
    asked: bool,
    response: Option<Vec<u8>>,
    /// How much of the response has been read.
    read: usize,
}

impl Conduit {
    /// The conduit `who` opens; their groups are read now, while they wait in open(2).
    pub fn new(who: &Credentials) -> Conduit {
        Conduit {
            caller: who.caller(),
            pid: who.pid,
            request: Vec::new(),
            too_big: false,
            running: false,
            asked: false,
            response: None,
            read: 0,
        }
    }

    /// Writes and reads come from the opener, or are refused.
    fn check_sender(&self, who: &Credentials) -> Result<()> {
        if (who.uid, who.gid) == (self.caller.uid, self.caller.gid) {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    fn held(&self) -> usize {
        self.request.len() + self.response.as_ref().map_or(0, Vec::len)
    }
}

/// The open conduits, and the bytes of requests and responses each user holds in them.
#[derive(Default)]
pub struct Conduits {
    open: HashMap<u64, Conduit>,
    held: HashMap<u32, usize>,
}

impl Conduits {
    pub(super) fn insert(&mut self, fh: Fh, c: Conduit) {
        self.open.insert(fh.0, c);
    }

    /// A conduit whose request came whole at open (`/.chunkfs/ask`), counted against its
    /// opener's budget as a written one is (`EDQUOT` past it).
    pub(super) fn insert_asked(
        &mut self,
        fh: Fh,
        who: &Credentials,
        request: Vec<u8>,
    ) -> Result<()> {
        self.charge(who.uid, request.len())?;
        let mut c = Conduit::new(who);
        c.request = request;
        c.asked = true;
        self.insert(fh, c);
        Ok(())
    }

    pub(super) fn remove(&mut self, fh: Fh) {
        if let Some(c) = self.open.remove(&fh.0) {
            self.uncharge(c.caller.uid, c.held());
        }
    }

    /// Count `n` more bytes against `uid`: anyone but root holds at most `USER_BUDGET`
    /// (`EDQUOT`), however many conduits they open.
    fn charge(&mut self, uid: u32, n: usize) -> Result<()> {
        if self.over_budget(uid, n) {
            return Err(FsError::QuotaExceeded);
        }
        *self.held.entry(uid).or_default() += n;
        Ok(())
    }

    /// Whether `n` more bytes would take `uid` past their budget (root has none).
    fn over_budget(&self, uid: u32, n: usize) -> bool {
        uid != 0 && self.held.get(&uid).copied().unwrap_or(0) + n > USER_BUDGET
    }

    fn uncharge(&mut self, uid: u32, n: usize) {
        if let Some(held) = self.held.get_mut(&uid) {
            *held = held.saturating_sub(n);
            if *held == 0 {
                self.held.remove(&uid);
            }
        }
    }
}

/// Requests are small; refuse anything that is not.
const MAX_REQUEST: usize = 1 << 20;

/// What one user other than root may hold in open conduits at once (requests written and not
/// yet executed, responses not yet released), so that opening many conduits cannot make the
/// daemon's memory grow without bound. Responses are counted but never refused (the request
/// has run); a user over the budget may execute nothing more until they close some.
const USER_BUDGET: usize = 16 << 20;

impl Inner {
    pub(super) fn conduit_write(&self, fh: Fh, who: &Credentials, data: &[u8]) -> Result<u32> {
        let mut conduits = self.conduits.lock().unwrap();
        let c = conduits.open.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
        c.check_sender(who)?;
        if c.running || c.response.is_some() {
            return Err(FsError::Invalid); // one request per open
        }
        if c.too_big || c.request.len() + data.len() > MAX_REQUEST {
            // A big write reaches us in pieces: the first may fit, and write(2) then
            // returns a short count. Remember, so the answer is EFBIG and not a parse error.
            c.too_big = true;
            let dropped = std::mem::take(&mut c.request).len();
            conduits.uncharge(who.uid, dropped);
            return Err(FsError::TooBig);
        }
        conduits.charge(who.uid, data.len())?;
        let c = conduits.open.get_mut(&fh.0).expect("checked above");
        c.request.extend_from_slice(data);
        Ok(data.len() as u32)
    }

    pub(super) fn conduit_read(&self, fh: Fh, who: &Credentials, size: u32) -> Result<Vec<u8>> {
        let pending = {
            let mut conduits = self.conduits.lock().unwrap();
            let c = conduits.open.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
            c.check_sender(who)?;
            if c.running {
                return Err(FsError::Invalid); // another read is executing the request
            }
            match &c.response {
                Some(_) => None,
                None => {
                    c.running = true;
                    let req = std::mem::take(&mut c.request);
                    let (too_big, asked, caller) = (c.too_big, c.asked, c.caller.clone());
                    let opener = Credentials {
                        uid: caller.uid,
                        gid: caller.gid,
                        pid: c.pid,
                    };
                    conduits.uncharge(caller.uid, req.len());
                    Some((req, too_big, asked, caller, opener))
                }
            }
        };
        if let Some((req, too_big, asked, caller, opener)) = pending {
            // Run without holding the conduit map: a request may take long (fsck, gc).
            // Full already: nothing more runs for them (the answer would be held too).
            let over_budget = self.conduits.lock().unwrap().over_budget(caller.uid, 1);
            let resp = if too_big {
                failure(&Failure::new(
                    FsError::TooBig,
                    format!("the request is over {MAX_REQUEST} bytes"),
                ))
            } else if over_budget {
                failure(&Failure::new(
                    FsError::QuotaExceeded,
                    "your open conduits hold too much; close them and ask again".into(),
                ))
            } else {
                let entry = self.progress.begin(fh, &opener);
                let resp = self.control_metered(&caller, &req, asked, entry.meter());
                entry.finish();
                resp
            };
            let mut bytes = serde_json::to_vec(&resp).unwrap_or_default();
            bytes.push(b'\n');
            let mut conduits = self.conduits.lock().unwrap();
            if let Some(c) = conduits.open.get_mut(&fh.0) {
                c.running = false;
                let n = bytes.len();
                c.response = Some(bytes);
                // Counted, never refused: the request has run.
                *conduits.held.entry(caller.uid).or_default() += n;
            }
        }
        let mut conduits = self.conduits.lock().unwrap();
        let c = conduits.open.get_mut(&fh.0).ok_or(FsError::BadHandle)?;
        let resp = c.response.as_ref().ok_or(FsError::BadHandle)?;
        let start = c.read.min(resp.len());
        let end = (start + size as usize).min(resp.len());
        c.read = end;
        Ok(resp[start..end].to_vec())
    }

    /// Execute one JSON request as this process's user and build its response.
    pub fn control(&self, request: &[u8]) -> Value {
        self.control_as(&Credentials::this_process().caller(), request)
    }

    /// Execute one JSON request for `who` and build its response.
    pub fn control_as(&self, who: &Caller, request: &[u8]) -> Value {
        self.control_metered(who, request, false, Meter::NONE)
    }

    /// Execute one JSON request for `who`; a long one reports its progress to `meter`.
    /// `asked`: it came in names under `/.chunkfs/ask`, which a mere read executes.
    fn control_metered(&self, who: &Caller, request: &[u8], asked: bool, meter: Meter) -> Value {
        let result = match request::parse(request) {
            // A change fails as it would through `ctl` where nothing may change at all.
            Ok(req) if asked && !req.changes_nothing() && self.check_writable().is_err() => Err(
                Failure::new(FsError::ReadOnly, "the filesystem is read-only".into()),
            ),
            Ok(req) if asked && !req.changes_nothing() => Err(Failure::new(
                FsError::NotPermitted,
                "a request asked through /.chunkfs/ask may only look (stats, sync, log, resolve, \
                 snapshot-list, config-get, request-counts, fsck without repair): reading a file \
                 must change nothing; send changes through /.chunkfs/ctl"
                    .into(),
            )),
            Ok(req) => self.dispatch(who, req, meter),
            Err(message) => Err(Failure::new(FsError::Invalid, message)),
        };
        match result {
            Ok(v) => json!({"ok": true, "result": v}),
            Err(f) => failure(&f),
        }
    }

    fn dispatch(
        &self,
        who: &Caller,
        req: Request,
        meter: Meter,
    ) -> std::result::Result<Value, Failure> {
        let v = match req {
            Request::Stats {} => to_value(self.stats()?),
            Request::Sync {} => {
                self.sync_all()?;
                json!({"seq": self.current_seq().0})
            }
            Request::Log { path } => to_value(self.log(who, &path)?),
            Request::Resolve {
                seq,
                time,
                snapshot,
            } => {
                let seq = self.resolve_target(who, At::one_of(seq, &time, &snapshot)?)?;
                json!({"seq": seq.0})
            }
            Request::SnapshotCreate { name, path } => {
                to_value(self.snapshot_create(who, &name, &path)?)
            }
            Request::SnapshotList {} => to_value(self.snapshot_list(who)?),
            Request::SnapshotDelete { name } => {
                self.snapshot_delete(who, &name)?;
                json!({})
            }
            Request::Clone { src, dst } => {
                meter.start("clone");
                to_value(self.clone_metered(who, &src, &dst, meter)?)
            }
            Request::Revert {
                path,
                seq,
                time,
                snapshot,
            } => {
                let seq = self.resolve_target(who, At::one_of(seq, &time, &snapshot)?)?;
                meter.start("revert");
                to_value(self.revert_metered(who, &path, seq, meter)?)
            }
            Request::Fsck { quick, repair_from } => {
                self.opts.admins.check(who)?;
                meter.start("fsck");
                match repair_from {
                    Some(dir) => {
                        // The daemon reads the host's DIR with its own rights: only for those
                        // who have them (root, the mounting user), not the admin group.
                        self.opts.admins.check_host(who)?;
                        to_value(self.fsck_repair_from(dir.as_ref(), quick, meter)?)
                    }
                    None => to_value(self.fsck_online_with(quick, meter)?),
                }
            }
            Request::Gc {} => {
                self.opts.admins.check(who)?;
                meter.start("gc");
                to_value(self.gc(&meter)?)
            }
            Request::Defrag { path } => {
                self.opts.admins.check(who)?;
                let ino = self.resolve_as(who, &path)?;
                meter.start("defrag");
                meter.phase("moving chunks", "bytes", None);
                to_value(self.defrag(ino, &|done, total| {
                    meter.phase("moving chunks", "bytes", Some(total));
                    meter.set(done);
                })?)
            }
            Request::ConfigGet { key } => to_value(self.config_get(key.as_deref())?),
            Request::ConfigSet { key, value } => {
                self.opts.admins.check(who)?;
                to_value(self.config_set(&key, &value)?)
            }
            Request::KernelCounts {} => {
                // What the daemon served tells of everyone's activity: for admins.
                self.opts.admins.check(who)?;
                let counts = self.request_counts().ok_or_else(|| {
                    Failure::new(
                        FsError::NotSupported,
                        "this filesystem is not served over FUSE".into(),
                    )
                })?;
                Value::Object(counts.into_iter().map(|(k, n)| (k, json!(n))).collect())
            }
        };
        Ok(v)
    }

    /// The seq a request names with "seq", "time" (ISO 8601 or @unix) or "snapshot".
    fn resolve_target(
        &self,
        who: &Caller,
        at: At,
    ) -> std::result::Result<crate::meta::Seq, Failure> {
        use super::special::{Point, parse_point};
        Ok(match at {
            At::Seq(seq) => self.resolve_point(Point::Seq(crate::meta::Seq(seq)))?,
            At::Time(t) => {
                let p = parse_point(t).ok_or_else(|| {
                    Failure::new(FsError::Invalid, format!("cannot read time {t:?}"))
                })?;
                self.resolve_point(p)?
            }
            At::Snapshot(name) => self.snapshot_seq(who, name)?,
        })
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn failure(f: &Failure) -> Value {
    json!({"ok": false, "errno": f.errno, "error": f.message})
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

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(FsError::Invalid, message)
    }
}
