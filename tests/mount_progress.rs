//! Progress of long conduit requests and the commands' JSON output, through a real mount
//! (docs/CONTROL.md, "Progress" and "JSON output of the commands").

mod mount_common;

use mount_common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// Run chunkfs with `args` and CHUNKFS_PROGRESS set to `progress` (or unset); stdout and
/// stderr are pipes.
fn run(progress: Option<&str>, args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("CHUNKFS_PROGRESS");
    if let Some(p) = progress {
        cmd.env("CHUNKFS_PROGRESS", p);
    }
    cmd.output().expect("run chunkfs")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: {}", stderr(&o));
    o
}

/// `n` small files under `dir`, in a few subdirectories.
fn tree(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
}

/// The newest seq, with everything written so far committed.
fn sync(m: &Mounted) -> u64 {
    m.ctl(r#"{"op":"sync"}"#)["seq"].as_u64().unwrap()
}

fn read_progress(m: &Mounted) -> Value {
    serde_json::from_slice(&std::fs::read(m.path(".chunkfs/progress")).unwrap()).unwrap()
}

#[test]
fn the_progress_file_shows_a_request_to_its_opener_until_its_conduit_closes() {
    let Some(m) = Mounted::with_options(&["allow_other"]) else {
        return;
    };
    tree(&m.path("t"), 40);
    let seq = sync(&m);
    std::fs::remove_dir_all(m.path("t")).unwrap();
    assert_eq!(read_progress(&m), serde_json::json!([]));

    let mut ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path(".chunkfs/ctl"))
        .unwrap();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u64;
    write!(ctl, r#"{{"op":"revert","path":"/t","seq":{seq}}}"#).unwrap();
    ctl.seek(SeekFrom::Start(0)).unwrap();
    let mut response = String::new();
    ctl.read_to_string(&mut response).unwrap();
    let response: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(response["ok"], true, "{response}");

    // Done, and still listed with its final counts while the conduit is open.
    let list = read_progress(&m);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["op"], "revert");
    assert_eq!(
        e["pid"], tid,
        "the entry names the thread that opened the conduit"
    );
    assert_eq!(e["uid"], 0);
    assert_eq!(e["running"], false);
    assert_eq!(e["phase"], "reverting");
    assert_eq!(e["unit"], "inodes");
    assert_eq!(e["total"], Value::Null);
    // The tree's root, its 4 directories and 40 files were restored.
    assert!(e["done"].as_u64().unwrap() >= 45, "{e}");
    assert!(e["started_ns"].as_i64().unwrap() > 0);

    // Another user sees nothing of it.
    for dir in [m.dir.path(), &m.mnt] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if is_root() {
        let mut cat = Command::new("cat");
        cat.arg(m.path(".chunkfs/progress")).current_dir("/");
        // SAFETY: only async-signal-safe calls, on memory allocated before the fork.
        unsafe {
            cat.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(4242) != 0
                    || libc::setuid(4242) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = cat.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "[]\n");
    }

    drop(ctl);
    // The kernel sends the conduit's release after close(2) returns: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read_progress(&m) != serde_json::json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "still listed after its conduit closed: {}",
            read_progress(&m)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Read-only, and fixed in /.chunkfs.
    assert!(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.path(".chunkfs/progress"))
            .is_err()
    );
}

#[test]
fn long_commands_show_progress_when_forced_and_print_nothing_on_a_pipe_by_default() {
    let Some(m) = Mounted::new() else { return };
    tree(&m.path("t"), 40);
    let seq = sync(&m).to_string();
    std::fs::remove_dir_all(m.path("t")).unwrap();
    let t = m.path("t");
    let revert = |progress, json: bool| {
        let mut args = vec![
            "revert".as_ref(),
            t.as_os_str(),
            "--to".as_ref(),
            seq.as_ref(),
        ];
        if json {
            args.push("--json".as_ref());
        }
        ok(run(progress, &args), "revert")
    };

    let forced = revert(Some("always"), false);
    let err = stderr(&forced);
    assert!(
        err.contains("revert: reverting: ") && err.contains(" inodes"),
        "no progress on stderr: {err:?}"
    );
    assert!(String::from_utf8_lossy(&forced.stdout).contains("reverted"));

    // Nothing when stderr is a pipe, with or without --json, or when told never.
    assert_eq!(stderr(&revert(None, false)), "");
    assert_eq!(stderr(&revert(None, true)), "");
    assert_eq!(stderr(&revert(Some("never"), false)), "");
    // --json keeps stdout JSON even with the bar forced on stderr.
    let o = revert(Some("always"), true);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["path"], "/t");
    assert!(stderr(&o).contains("revert"));

    let gc = |progress| ok(run(progress, &["gc".as_ref(), m.mnt.as_os_str()]), "gc");
    assert!(stderr(&gc(Some("always"))).contains("gc: done: "));
    assert_eq!(stderr(&gc(None)), "");

    let u = m.path("u");
    let clone = |progress, dst: &Path| {
        let args = ["clone".as_ref(), t.as_os_str(), dst.as_os_str()];
        ok(run(progress, &args), "clone")
    };
    assert!(stderr(&clone(Some("always"), &u)).contains("clone: cloning"));
    assert_eq!(stderr(&clone(None, &m.path("v"))), "");

    let fsck = ok(
        run(
            Some("always"),
            &["fsck".as_ref(), m.mnt.as_os_str(), "--json".as_ref()],
        ),
        "fsck",
    );
    assert!(
        stderr(&fsck).contains("fsck: verifying data"),
        "{}",
        stderr(&fsck)
    );
}

/// The tables of docs/CONTROL.md's "JSON output of the commands": per command heading,
/// each documented field path and its type.
fn documented_shapes() -> BTreeMap<String, Vec<(String, String)>> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONTROL.md")).unwrap();
    let section = doc
        .split("\n## JSON output of the commands\n")
        .nth(1)
        .expect("docs/CONTROL.md has a section \"JSON output of the commands\"");
    let section = section.split("\n## ").next().unwrap();
    let mut shapes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for line in section.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let command = h.trim().trim_matches('`').to_string();
            shapes.insert(command.clone(), Vec::new());
            current = Some(command);
        } else if let (Some(c), Some(row)) = (&current, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let field = cells[0].trim_end_matches('`').to_string();
            shapes
                .get_mut(c)
                .unwrap()
                .push((field, cells[1].to_string()));
        }
    }
    shapes
}

fn type_matches(v: &Value, ty: &str) -> bool {
    ty.split(" or ").any(|t| match t {
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("docs/CONTROL.md names an unknown type {other:?}"),
    })
}

/// Check `output` of `command` against its documented fields: every documented field is
/// there with its type, and every field there is documented (for objects whose fields the
/// table lists).
fn check_shape(command: &str, fields: &[(String, String)], output: &Value) {
    // Group the documented paths by the object they belong to: "" (the top level), "[]"
    // (each element of a top-level array), "revisions[]" (each element of that array).
    let mut by_parent: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (path, ty) in fields {
        let (parent, name) = match path.rfind("[].") {
            Some(i) => (&path[..i + 2], &path[i + 3..]),
            None => ("", path.as_str()),
        };
        by_parent.entry(parent).or_default().insert(name, ty);
    }
    if fields.is_empty() {
        assert!(output.is_object(), "{command}: not an object: {output}");
        return;
    }
    for (parent, documented) in by_parent {
        let objects: Vec<&Value> = match parent {
            "" => vec![output],
            "[]" => output.as_array().unwrap().iter().collect(),
            p => output[p.trim_end_matches("[]")]
                .as_array()
                .unwrap()
                .iter()
                .collect(),
        };
        assert!(
            !objects.is_empty(),
            "{command}: nothing to check at {parent:?}"
        );
        for o in objects {
            let o = o
                .as_object()
                .unwrap_or_else(|| panic!("{command}: {parent:?} is not an object: {o}"));
            let present: BTreeSet<&str> = o.keys().map(String::as_str).collect();
            let listed: BTreeSet<&str> = documented.keys().copied().collect();
            assert_eq!(
                present, listed,
                "{command}: fields at {parent:?} differ from docs/CONTROL.md"
            );
            for (name, ty) in &documented {
                assert!(
                    type_matches(&o[*name], ty),
                    "{command}: {parent}{name} is {}, documented as {ty}",
                    o[*name]
                );
            }
        }
    }
}

#[test]
fn every_command_prints_the_json_docs_control_md_documents() {
    let Some(mut m) = Mounted::new() else { return };
    tree(&m.path("t"), 8);
    std::fs::write(m.path("big"), random_bytes(1, 3 << 20)).unwrap();
    let seq = sync(&m).to_string();
    let mnt = m.mnt.clone();
    let p = |rel: &str| m.path(rel).into_os_string();
    let json = |args: &[std::ffi::OsString]| -> Value {
        let mut a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        a.push("--json".as_ref());
        let o = run(None, &a);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?} printed on stderr");
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {:?}", o.stdout))
    };
    let s = |x: &str| std::ffi::OsString::from(x);
    let mut outputs: Vec<(&str, Value)> = vec![
        ("chunkfs stats --json", json(&[s("stats"), p("")])),
        (
            "chunkfs stats --requests --json",
            json(&[s("stats"), s("--requests"), p("")]),
        ),
        ("chunkfs log --json", json(&[s("log"), p("t/d1/f1")])),
        (
            "chunkfs snapshot create --json",
            json(&[s("snapshot"), s("create"), s("s1"), p("")]),
        ),
        (
            "chunkfs snapshot list --json",
            json(&[s("snapshot"), s("list"), p("")]),
        ),
        (
            "chunkfs snapshot delete --json",
            json(&[s("snapshot"), s("delete"), s("s1"), p("")]),
        ),
        (
            "chunkfs config get --json",
            json(&[s("config"), s("get"), p("")]),
        ),
        (
            "chunkfs config set --json",
            json(&[s("config"), s("set"), p(""), s("snapshot-limit"), s("10")]),
        ),
        ("chunkfs clone --json", json(&[s("clone"), p("t"), p("u")])),
        (
            "chunkfs revert --json",
            json(&[s("revert"), p("t"), s("--to"), s(&seq)]),
        ),
        ("chunkfs gc --json", json(&[s("gc"), mnt.clone().into()])),
        ("chunkfs defrag --json", json(&[s("defrag"), p("big")])),
        (
            "chunkfs fsck --json",
            json(&[s("fsck"), mnt.clone().into()]),
        ),
    ];
    // Offline: the same shapes.
    m.umount();
    let store = m.store.clone().into_os_string();
    outputs.push(("chunkfs gc --json", json(&[s("gc"), store.clone()])));
    outputs.push(("chunkfs fsck --json", json(&[s("fsck"), store.clone()])));
    outputs.push(("chunkfs stats --json", json(&[s("stats"), store.clone()])));
    outputs.push((
        "chunkfs defrag --json",
        json(&[s("defrag"), store.clone(), s("big")]),
    ));
    outputs.push((
        "chunkfs config get --json",
        json(&[s("config"), s("get"), store]),
    ));

    let shapes = documented_shapes();
    let tested: BTreeSet<&str> = outputs.iter().map(|(c, _)| *c).collect();
    let documented: BTreeSet<&str> = shapes.keys().map(String::as_str).collect();
    assert_eq!(
        tested, documented,
        "every documented shape is tested, and every tested one documented"
    );
    for (command, output) in &outputs {
        check_shape(command, &shapes[*command], output);
    }
}
