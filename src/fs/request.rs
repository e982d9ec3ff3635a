//! The conduit's requests, parsed strictly (docs/CONTROL.md): an unknown op or field, a
//! duplicate key, a value of the wrong type, a bad name or two selectors where one is asked
//! for are all `EINVAL`, never a guess.

use serde::Deserialize;

/// One request. serde refuses unknown fields (`deny_unknown_fields`), duplicate keys (the
/// derived visitors report `duplicate field`, the tag's visitor a second `op`) and values of
/// another type (`"quick": "yes"` is not a bool).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Stats {},
    Sync {},
    Log {
        path: String,
    },
    Resolve {
        seq: Option<u64>,
        time: Option<String>,
        snapshot: Option<String>,
    },
    SnapshotCreate {
        name: String,
        #[serde(default = "root")]
        path: String,
    },
    SnapshotList {},
    SnapshotDelete {
        name: String,
    },
    Clone {
        src: String,
        dst: String,
    },
    Revert {
        path: String,
        seq: Option<u64>,
        time: Option<String>,
        snapshot: Option<String>,
    },
    Fsck {
        #[serde(default)]
        quick: bool,
        repair_from: Option<String>,
    },
    Gc {},
    Defrag {
        path: String,
    },
    ConfigGet {
        key: Option<String>,
    },
    ConfigSet {
        key: String,
        value: String,
    },
    /// The daemon's count of kernel requests per type since it mounted (docs/FUSE-TUNING.md).
    #[serde(rename = "request-counts")]
    KernelCounts {},
}

impl Request {
    /// Whether the request only looks: nothing in the tree, its history or the settings
    /// changes (`sync` makes durable what was already written; `fsck` only reads unless it
    /// repairs). Only these may be asked through names under `/.chunkfs/ask`, which a mere
    /// read executes: a symlink to one must not make a root process that follows it change
    /// anything (docs/CONTROL.md).
    pub fn changes_nothing(&self) -> bool {
        match self {
            Request::Stats {}
            | Request::Sync {}
            | Request::Log { .. }
            | Request::Resolve { .. }
            | Request::SnapshotList {}
            | Request::ConfigGet { .. }
            | Request::KernelCounts {} => true,
            Request::Fsck { repair_from, .. } => repair_from.is_none(),
            Request::SnapshotCreate { .. }
            | Request::SnapshotDelete { .. }
            | Request::Clone { .. }
            | Request::Revert { .. }
            | Request::Gc {}
            | Request::Defrag { .. }
            | Request::ConfigSet { .. } => false,
        }
    }
}

fn root() -> String {
    "/".into()
}

/// A point in history as a request names it: exactly one of "seq", "time", "snapshot".
#[derive(Debug, PartialEq, Eq)]
pub enum At<'a> {
    Seq(u64),
    Time(&'a str),
    Snapshot(&'a str),
}

impl<'a> At<'a> {
    pub fn one_of(
        seq: Option<u64>,
        time: &'a Option<String>,
        snapshot: &'a Option<String>,
    ) -> Result<At<'a>, String> {
        match (seq, time.as_deref(), snapshot.as_deref()) {
            (Some(s), None, None) => Ok(At::Seq(s)),
            (None, Some(t), None) => Ok(At::Time(t)),
            (None, None, Some(n)) => {
                check_name(n)?;
                Ok(At::Snapshot(n))
            }
            (None, None, None) => Err("give one of \"seq\", \"time\" or \"snapshot\"".into()),
            _ => Err("give only one of \"seq\", \"time\" and \"snapshot\"".into()),
        }
    }
}

/// Parse one request; the error says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Request, String> {
    let request: Request = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("the request is not JSON: {e}")
        } else {
            format!("bad request: {e}")
        }
    })?;
    match &request {
        Request::SnapshotCreate { name, .. } | Request::SnapshotDelete { name } => {
            check_name(name)?
        }
        Request::Resolve {
            seq,
            time,
            snapshot,
        }
        | Request::Revert {
            seq,
            time,
            snapshot,
            ..
        } => {
            At::one_of(*seq, time, snapshot)?;
        }
        _ => {}
    }
    Ok(request)
}

/// A snapshot name is a file name under `/.chunkfs/snapshots`: 1 to 255 bytes, no `/`, not
/// `.` or `..`, and no control characters (NUL, newline, ...) nor characters that reorder or
/// hide text (`hides_text`), which no listing shows sanely.
pub fn check_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 255 {
        "is over 255 bytes"
    } else if name == "." || name == ".." {
        "is . or .."
    } else if name.contains('/') {
        "contains '/'"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.chars().any(hides_text) {
        "contains a character that reorders or hides text"
    } else {
        return Ok(());
    };
    Err(format!("the name {name:?} {why}"))
}

/// Unicode's bidirectional marks, embeddings, overrides and isolates (a listing then shows
/// the text in another order than stored) and its zero-width characters (two names that look
/// the same): format characters no listing shows as what they are.
fn hides_text(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> String {
        parse(json.as_bytes()).expect_err(json)
    }

    #[test]
    fn well_formed_requests_parse() {
        assert_eq!(parse(br#"{"op":"stats"}"#), Ok(Request::Stats {}));
        assert_eq!(
            parse(br#"{"op":"request-counts"}"#),
            Ok(Request::KernelCounts {})
        );
        assert_eq!(
            parse(br#"{"op":"snapshot-create","name":"monday"}"#),
            Ok(Request::SnapshotCreate {
                name: "monday".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            parse(br#"{"quick":true,"op":"fsck"}"#),
            Ok(Request::Fsck {
                quick: true,
                repair_from: None
            })
        );
    }

    #[test]
    fn unknown_ops_and_fields_are_refused() {
        assert!(refused(r#"{"op":"format-disk"}"#).contains("unknown variant"));
        assert!(refused(r#"{"op":"stats","bogus":1}"#).contains("unknown field"));
        assert!(refused(r#"{"path":"/"}"#).contains("op"));
        assert!(refused("not json").contains("not JSON"));
        assert!(refused(r#"[1]"#).contains("bad request"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(refused(r#"{"op":"stats","op":"gc"}"#).contains("duplicate"));
        assert!(refused(r#"{"op":"log","path":"/a","path":"/b"}"#).contains("duplicate"));
    }

    #[test]
    fn fields_have_exact_types() {
        assert!(refused(r#"{"op":"fsck","quick":"yes"}"#).contains("invalid type"));
        assert!(refused(r#"{"op":"fsck","quick":1}"#).contains("invalid type"));
        assert!(refused(r#"{"op":"revert","path":"/","seq":"3"}"#).contains("invalid type"));
        assert!(refused(r#"{"op":"revert","path":"/","seq":-1}"#).contains("invalid"));
        assert!(refused(r#"{"op":"revert","path":"/","seq":1.5}"#).contains("invalid"));
    }

    #[test]
    fn names_are_checked_like_file_names() {
        for bad in ["", ".", "..", "a/b", "a\u{0}b", "a\nb", "a\u{7f}", "\u{85}"] {
            let json = serde_json::json!({"op": "snapshot-create", "name": bad}).to_string();
            assert!(parse(json.as_bytes()).is_err(), "{bad:?} accepted");
        }
        let long = "x".repeat(256);
        assert!(check_name(&long).is_err());
        assert!(check_name(&"x".repeat(255)).is_ok());
        assert!(check_name("montag-früh").is_ok());
    }

    #[test]
    fn names_with_characters_that_reorder_or_hide_text_are_refused() {
        // Bidirectional overrides and isolates make a listing show another name than the
        // one stored; zero-width characters make two names look alike.
        for bad in [
            "\u{202e}gpj.txt",
            "a\u{2066}b",
            "a\u{200b}b",
            "\u{feff}a",
            "a\u{200f}",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            check_name("a\u{a0}b").is_ok(),
            "a no-break space shows as a space"
        );
    }

    #[test]
    fn selectors_are_mutually_exclusive() {
        assert!(
            refused(r#"{"op":"revert","path":"/","seq":1,"snapshot":"a"}"#).contains("only one")
        );
        assert!(refused(r#"{"op":"resolve"}"#).contains("one of"));
        assert!(parse(br#"{"op":"resolve","time":"@5"}"#).is_ok());
    }
}
