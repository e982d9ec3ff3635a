//! `/.chunkfs/ask`: the conduit for mounts that are read-only. The kernel refuses to open any
//! regular file of a read-only mount for writing, `/.chunkfs/ctl` included, so `chunkfs log`,
//! `stats`, `snapshot list`, `config get` and every other request that changes nothing could
//! not be asked there. Under `ask` the request is carried by names instead of a write:
//!
//! - the request's bytes, cut into pieces of `PIECE` bytes, each encoded as unpadded base64url
//!   (`URL_SAFE_NO_PAD`), one name per piece;
//! - every name but the last ends with `+` and is a directory, the last is a file:
//!   `/.chunkfs/ask/<piece1>+/<piece2>+/<piece3>`;
//! - opening the file (read-only) and reading it executes the request, decoded from the names
//!   along its path, for whoever opened it, exactly as a request written to `ctl`; the
//!   response is the same JSON.
//!
//! A client walks the names one at a time (`openat` from the directory before), so no path
//! grows past PATH_MAX whatever the request's length; `MAX_ASK` bounds it. The names hold no
//! secret and no right: whoever asks is who the request acts for, as with `ctl`.
//!
//! The daemon remembers the nodes it handed out (their inode numbers stand for the request so
//! far) in a table bounded in count and bytes. Each user's nodes are their own, and when the
//! table is full the heaviest user's oldest node goes, so one user's flood of long requests
//! cannot make another's walk fail with `ESTALE`. A file node dropped before it is opened is
//! looked up anew the next time the kernel asks, since names under `ask` are never cached
//! (entry and attribute TTL 0).

use super::error::{FsError, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Request bytes per name: 189 bytes encode to 252 characters, within NAME_MAX (255) with the
/// `+` that marks a directory.
pub const PIECE: usize = 189;

/// The mark of a name with more pieces below it.
const MORE: char = '+';

/// The longest request asked through names (requests are small; a path is at most 4 KiB).
pub const MAX_ASK: usize = 64 << 10;

/// What the table of nodes may hold at once, in nodes and in request bytes.
const MAX_NODES: usize = 4096;
const MAX_BYTES: usize = 16 << 20;

/// The names that carry `request`: every one but the last ends with `+`.
pub fn names(request: &[u8]) -> Vec<String> {
    let pieces: Vec<&[u8]> = if request.is_empty() {
        vec![&[][..]]
    } else {
        request.chunks(PIECE).collect()
    };
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut name = URL_SAFE_NO_PAD.encode(p);
            if i < last {
                name.push(MORE);
            }
            name
        })
        .collect()
}

/// A name's piece of the request, and whether more pieces follow (a directory).
fn parse(name: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (body, more) = match name.strip_suffix(MORE.to_string().as_bytes()) {
        Some(body) => (body, true),
        None => (name, false),
    };
    let piece = URL_SAFE_NO_PAD.decode(body).ok()?;
    // A directory's piece is whole, so that pieces join without re-encoding.
    if more && piece.len() != PIECE {
        return None;
    }
    Some((piece, more))
}

/// A node under `ask`: the request up to and including its name, and whether more follows.
#[derive(Clone, Debug)]
pub struct Node {
    pub request: Arc<Vec<u8>>,
    pub dir: bool,
}

/// The nodes handed out, numbered from 1 (0 stands for `ask` itself). Each user's nodes are
/// their own (the key holds the uid), and when the table is full the oldest node of the user
/// holding the most bytes goes: one user asking many long requests drops only their own
/// nodes, never those another user is walking (the most nodes when the count overflows, the
/// most bytes when the bytes do).
#[derive(Default)]
pub struct Asks {
    nodes: HashMap<u64, (Node, Key)>,
    by_name: HashMap<Key, u64>,
    users: HashMap<u32, Held>,
    bytes: usize,
    last: u64,
}

/// A node's name: who looked it up, below which node, by which name.
type Key = (u32, u64, Vec<u8>);

/// One user's nodes, oldest first, and their request bytes.
#[derive(Default)]
struct Held {
    order: VecDeque<u64>,
    bytes: usize,
}

impl Asks {
    /// The node `name` names below node `parent` (0: `ask`) for user `uid`, numbered anew if
    /// unknown. ENOENT for a name that is not a piece of a request, below a file, or past
    /// `MAX_ASK`.
    pub fn child(
        &mut self,
        uid: u32,
        parent: u64,
        name: &[u8],
        numbers: u64,
    ) -> Result<(u64, Node)> {
        let key = (uid, parent, name.to_vec());
        if let Some(&n) = self.by_name.get(&key) {
            return Ok((n, self.nodes[&n].0.clone()));
        }
        let before = match parent {
            0 => Arc::new(Vec::new()),
            p => {
                let (node, _) = self.nodes.get(&p).ok_or(FsError::Stale)?;
                if !node.dir {
                    return Err(FsError::NotDir);
                }
                node.request.clone()
            }
        };
        let (piece, dir) = parse(name).ok_or(FsError::NotFound)?;
        if before.len() + piece.len() > MAX_ASK {
            return Err(FsError::NameTooLong);
        }
        let node = Node {
            request: Arc::new([&before[..], &piece[..]].concat()),
            dir,
        };
        // Numbers run through `numbers` values and wrap; a number is reused only after that
        // many lookups, long after the kernel let go of it (it never caches these names).
        self.last = self.last % numbers + 1;
        let n = self.last;
        self.drop_node(n);
        self.bytes += node.request.len();
        let held = self.users.entry(uid).or_default();
        held.bytes += node.request.len();
        held.order.push_back(n);
        self.nodes.insert(n, (node.clone(), key.clone()));
        self.by_name.insert(key, n);
        while self.nodes.len() > MAX_NODES || self.bytes > MAX_BYTES {
            // The user holding the most of what overflows gives up their oldest node.
            let over_count = self.nodes.len() > MAX_NODES;
            let heaviest = self
                .users
                .iter()
                .max_by_key(|(_, h)| if over_count { h.order.len() } else { h.bytes });
            let Some((&heaviest, _)) = heaviest else {
                break;
            };
            let Some(old) = self.users[&heaviest].order.front().copied() else {
                break;
            };
            self.drop_node(old);
        }
        Ok((n, node))
    }

    /// Forget node `n`; whether it was there.
    fn drop_node(&mut self, n: u64) -> bool {
        let Some((node, key)) = self.nodes.remove(&n) else {
            return false;
        };
        self.bytes -= node.request.len();
        if let Some(held) = self.users.get_mut(&key.0) {
            held.bytes -= node.request.len();
            if held.order.front() == Some(&n) {
                held.order.pop_front();
            } else {
                held.order.retain(|&m| m != n);
            }
            if held.order.is_empty() {
                self.users.remove(&key.0);
            }
        }
        self.by_name.remove(&key);
        true
    }

    /// The node numbered `n`, if still remembered.
    pub fn get(&self, n: u64) -> Option<Node> {
        self.nodes.get(&n).map(|(node, _)| node.clone())
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.nodes.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk `names` from `ask` as the kernel would; the last node.
    fn walk(asks: &mut Asks, names: &[String]) -> Result<Node> {
        let mut at = 0;
        let mut node = None;
        for name in names {
            let (n, nd) = asks.child(0, at, name.as_bytes(), 1 << 30)?;
            at = n;
            node = Some(nd);
        }
        Ok(node.unwrap())
    }

    #[test]
    fn requests_of_any_length_round_trip_through_names_within_name_max() {
        let mut asks = Asks::default();
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 7, 5000] {
            let request: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let names = names(&request);
            assert!(names.iter().all(|n| n.len() <= 255), "{len}");
            assert_eq!(names.len(), len.div_ceil(PIECE).max(1));
            let node = walk(&mut asks, &names).unwrap();
            assert!(!node.dir);
            assert_eq!(*node.request, request, "{len}");
        }
    }

    #[test]
    fn names_that_carry_no_request_are_not_found() {
        let mut asks = Asks::default();
        for bad in [&b"not base64!"[..], b"QUJD+", b"+", b"..", b"=="] {
            assert!(
                matches!(asks.child(0, 0, bad, 1 << 30), Err(FsError::NotFound)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (file, _) = asks.child(0, 0, b"QUJD", 1 << 30).unwrap();
        assert!(matches!(
            asks.child(0, file, b"QUJD", 1 << 30),
            Err(FsError::NotDir)
        ));
        let long = vec![b'x'; MAX_ASK + 1];
        assert!(matches!(
            walk(&mut asks, &names(&long)),
            Err(FsError::NameTooLong)
        ));
    }

    #[test]
    fn the_table_stays_bounded_and_a_dropped_node_is_made_anew() {
        let mut asks = Asks::default();
        let first = names(b"{\"op\":\"stats\"}");
        let (n, _) = asks.child(0, 0, first[0].as_bytes(), 1 << 30).unwrap();
        for i in 0..3 * MAX_NODES {
            walk(&mut asks, &names(format!("{i:0200}").as_bytes())).unwrap();
            let (nodes, bytes) = asks.held();
            assert!(nodes <= MAX_NODES && bytes <= MAX_BYTES);
        }
        assert!(asks.get(n).is_none(), "the oldest node was dropped");
        let again = walk(&mut asks, &first).unwrap();
        assert_eq!(&again.request[..], b"{\"op\":\"stats\"}");
    }

    #[test]
    fn one_users_flood_of_long_requests_drops_none_of_anothers_nodes() {
        let mut asks = Asks::default();
        let victim = names(&[b' '; 3 * PIECE]);
        let (mid, _) = asks.child(1000, 0, victim[0].as_bytes(), 1 << 30).unwrap();
        // Another user asks unique long requests, far more than the table holds.
        for i in 0..40 {
            let mut at = 0;
            for name in names(format!("{i:060000}").as_bytes()) {
                at = asks.child(65534, at, name.as_bytes(), 1 << 30).unwrap().0;
            }
            let (nodes, bytes) = asks.held();
            assert!(nodes <= MAX_NODES && bytes <= MAX_BYTES);
        }
        // The victim's walk goes on from where it was.
        let (next, _) = asks
            .child(1000, mid, victim[1].as_bytes(), 1 << 30)
            .unwrap();
        let (_, last) = asks
            .child(1000, next, victim[2].as_bytes(), 1 << 30)
            .unwrap();
        assert_eq!(&last.request[..], &[b' '; 3 * PIECE][..]);
        // Names are per user: the same name looked up by another is another node.
        let (theirs, _) = asks.child(65534, 0, victim[0].as_bytes(), 1 << 30).unwrap();
        assert_ne!(theirs, mid);
    }

    #[test]
    fn one_users_flood_of_tiny_requests_drops_none_of_anothers_nodes() {
        let mut asks = Asks::default();
        let request = [b' '; 60 * PIECE];
        let victim = names(&request);
        let mut at = 0;
        for name in &victim[..59] {
            at = asks.child(1000, at, name.as_bytes(), 1 << 30).unwrap().0;
        }
        // Another user fills the table's count with one-byte requests: they hold the most
        // nodes, the victim the most bytes.
        for i in 0..2 * MAX_NODES {
            let name = URL_SAFE_NO_PAD.encode([i as u8, (i >> 8) as u8]);
            asks.child(65534, 0, name.as_bytes(), 1 << 30).unwrap();
            assert!(asks.held().0 <= MAX_NODES);
        }
        let (_, last) = asks
            .child(1000, at, victim[59].as_bytes(), 1 << 30)
            .unwrap();
        assert_eq!(&last.request[..], &request[..]);
    }

    #[test]
    fn numbers_wrap_without_aliasing_a_remembered_node() {
        let mut asks = Asks::default();
        let a = asks.child(0, 0, b"QUJD", 3).unwrap().0;
        let b = asks.child(0, 0, b"REVG", 3).unwrap().0;
        let c = asks.child(0, 0, b"R0hJ", 3).unwrap().0;
        let d = asks.child(0, 0, b"SktM", 3).unwrap().0;
        assert_eq!((a, b, c, d), (1, 2, 3, 1));
        assert_eq!(&asks.get(1).unwrap().request[..], b"JKL");
        assert_eq!(&asks.get(2).unwrap().request[..], b"DEF");
        // "ABC" lost its number to "JKL": asked again, it gets the next one.
        assert_eq!(asks.child(0, 0, b"QUJD", 3).unwrap().0, 2);
        assert_eq!(&asks.get(2).unwrap().request[..], b"ABC");
        assert_eq!(asks.held().0, 3);
    }
}
