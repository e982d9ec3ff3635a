//! The core API's namespace operations without a mount: names, creation of every kind of node,
//! lookup, unlink, rmdir, hard links, rename with its flags, link counts, readdir and access.
//! Every test ends with `Env`'s drop check: consistent refcounts and space, and the whole
//! tree unchanged across a close and reopen.

mod common;
mod support;

use chunkfs::fs::{FileKind, Ino, RenameFlags, SetAttr, TimeSet};
use common::*;
use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};
use support::*;

const NONE: RenameFlags = RenameFlags {
    noreplace: false,
    exchange: false,
};
const NOREPLACE: RenameFlags = RenameFlags {
    noreplace: true,
    exchange: false,
};
const EXCHANGE: RenameFlags = RenameFlags {
    noreplace: false,
    exchange: true,
};

fn mkdir(fs: &chunkfs::fs::Fs, parent: Ino, name: &str) -> Ino {
    fs.mkdir(parent, name.as_bytes(), 0o755, 0, 0).unwrap().ino
}

#[test]
fn names_of_255_bytes_work_and_256_bytes_are_too_long() {
    let fs = Env::new();
    let ok = vec![b'x'; 255];
    let long = vec![b'y'; 256];
    let ino = write_file(&fs, Ino::ROOT, std::str::from_utf8(&ok).unwrap(), b"data");
    assert_eq!(fs.lookup(Ino::ROOT, &ok).unwrap().ino, ino);
    let e = libc::ENAMETOOLONG;
    assert_eq!(
        errno(fs.create(Ino::ROOT, &long, 0o644, libc::O_RDWR, 0, 0)),
        e
    );
    assert_eq!(errno(fs.mkdir(Ino::ROOT, &long, 0o755, 0, 0)), e);
    assert_eq!(
        errno(fs.mknod(Ino::ROOT, &long, libc::S_IFIFO | 0o644, 0, 0, 0)),
        e
    );
    assert_eq!(errno(fs.symlink(Ino::ROOT, &long, b"t", 0, 0)), e);
    assert_eq!(errno(fs.link(ino, Ino::ROOT, &long)), e);
    assert_eq!(errno(fs.lookup(Ino::ROOT, &long)), e);
    assert_eq!(errno(fs.unlink(Ino::ROOT, &long)), e);
    assert_eq!(errno(fs.rmdir(Ino::ROOT, &long)), e);
    assert_eq!(errno(fs.rename(Ino::ROOT, &ok, Ino::ROOT, &long, NONE)), e);
    assert_eq!(errno(fs.rename(Ino::ROOT, &long, Ino::ROOT, b"z", NONE)), e);
    assert_eq!(names(&fs, Ino::ROOT), vec![ok]);
}

#[test]
fn names_may_hold_any_byte_but_slash_and_nul() {
    let fs = Env::new();
    let odd: Vec<Vec<u8>> = vec![
        (1u8..=255).filter(|&b| b != b'/').take(200).collect(),
        vec![0xff, 0xfe, 0x80],
        b" leading and trailing ".to_vec(),
        b"\n\t\x7f".to_vec(),
        b"...".to_vec(),
        b"-".to_vec(),
    ];
    for (i, name) in odd.iter().enumerate() {
        let (a, h) = fs
            .create(Ino::ROOT, name, 0o644, libc::O_RDWR, 0, 0)
            .unwrap();
        fs.write(a.ino, h.fh, 0, &[i as u8; 10]).unwrap();
        fs.release(a.ino, h.fh).unwrap();
        assert_eq!(fs.lookup(Ino::ROOT, name).unwrap().ino, a.ino);
    }
    let mut want = odd.clone();
    want.sort();
    assert_eq!(names(&fs, Ino::ROOT), want);
    for bad in [&b"a/b"[..], b"a\0b", b"", b".", b".."] {
        assert_eq!(
            errno(fs.create(Ino::ROOT, bad, 0o644, libc::O_RDWR, 0, 0)),
            libc::EINVAL,
            "{bad:?}"
        );
        assert_eq!(errno(fs.mkdir(Ino::ROOT, bad, 0o755, 0, 0)), libc::EINVAL);
    }
}

#[test]
fn creating_an_existing_name_fails_with_eexist_for_every_kind() {
    let fs = Env::new();
    write_file(&fs, Ino::ROOT, "f", b"1");
    mkdir(&fs, Ino::ROOT, "d");
    for name in [&b"f"[..], b"d"] {
        let e = libc::EEXIST;
        assert_eq!(
            errno(fs.create(Ino::ROOT, name, 0o644, libc::O_RDWR, 0, 0)),
            e
        );
        assert_eq!(errno(fs.mkdir(Ino::ROOT, name, 0o755, 0, 0)), e);
        assert_eq!(
            errno(fs.mknod(Ino::ROOT, name, libc::S_IFIFO | 0o600, 0, 0, 0)),
            e
        );
        assert_eq!(errno(fs.symlink(Ino::ROOT, name, b"x", 0, 0)), e);
    }
    assert_eq!(
        read_file(&fs, fs.lookup(Ino::ROOT, b"f").unwrap().ino),
        b"1"
    );
}

#[test]
fn missing_names_and_missing_parents_give_enoent() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"nope")), libc::ENOENT);
    assert_eq!(errno(fs.unlink(Ino::ROOT, b"nope")), libc::ENOENT);
    assert_eq!(errno(fs.rmdir(Ino::ROOT, b"nope")), libc::ENOENT);
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"nope", d, b"x", NONE)),
        libc::ENOENT
    );
    assert_eq!(errno(fs.getattr(Ino(9999))), libc::ENOENT);
    // A directory removed while a caller still holds its inode number.
    fs.rmdir(Ino::ROOT, b"d").unwrap();
    assert_eq!(
        errno(fs.create(d, b"x", 0o644, libc::O_RDWR, 0, 0)),
        libc::ENOENT
    );
    assert_eq!(errno(fs.mkdir(d, b"x", 0o755, 0, 0)), libc::ENOENT);
    assert_eq!(errno(fs.lookup(d, b"x")), libc::ENOENT);
    assert_eq!(errno(fs.opendir(d)), libc::ENOENT);
}

#[test]
fn a_file_used_as_a_directory_gives_enotdir() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    assert_eq!(errno(fs.lookup(f, b"x")), libc::ENOTDIR);
    assert_eq!(
        errno(fs.create(f, b"x", 0o644, libc::O_RDWR, 0, 0)),
        libc::ENOTDIR
    );
    assert_eq!(errno(fs.mkdir(f, b"x", 0o755, 0, 0)), libc::ENOTDIR);
    assert_eq!(errno(fs.readdir(f, 0, 10)), libc::ENOTDIR);
    assert_eq!(errno(fs.opendir(f)), libc::ENOTDIR);
    assert_eq!(errno(fs.rmdir(Ino::ROOT, b"f")), libc::ENOTDIR);
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"f", f, b"g", NONE)),
        libc::ENOTDIR
    );
    assert_eq!(errno(fs.link(f, f, b"g")), libc::ENOTDIR);
}

#[test]
fn directories_refuse_file_operations_with_eisdir() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    assert_eq!(errno(fs.unlink(Ino::ROOT, b"d")), libc::EISDIR);
    assert_eq!(errno(fs.open(d, libc::O_RDONLY)), libc::EISDIR);
    let trunc = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(errno(fs.setattr(d, &trunc)), libc::EISDIR);
    write_file(&fs, Ino::ROOT, "f", b"x");
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"f", Ino::ROOT, b"d", NONE)),
        libc::EISDIR
    );
    assert_eq!(fs.lookup(Ino::ROOT, b"d").unwrap().ino, d);
}

#[test]
fn rmdir_of_a_non_empty_directory_fails_and_of_an_empty_one_succeeds() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    write_file(&fs, d, "f", b"x");
    assert_eq!(errno(fs.rmdir(Ino::ROOT, b"d")), libc::ENOTEMPTY);
    assert_eq!(errno(fs.rmdir(d, b".")), libc::EINVAL);
    assert_eq!(errno(fs.rmdir(d, b"..")), libc::ENOTEMPTY);
    fs.unlink(d, b"f").unwrap();
    fs.rmdir(Ino::ROOT, b"d").unwrap();
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"d")), libc::ENOENT);
    assert_eq!(fs.getattr(Ino::ROOT).unwrap().nlink, 2);
}

#[test]
fn directory_nlink_is_two_plus_subdirectories() {
    let fs = Env::new();
    assert_eq!(fs.getattr(Ino::ROOT).unwrap().nlink, 2);
    let a = mkdir(&fs, Ino::ROOT, "a");
    let b = mkdir(&fs, Ino::ROOT, "b");
    mkdir(&fs, a, "x");
    mkdir(&fs, a, "y");
    write_file(&fs, a, "file", b"not a dir");
    fs.mknod(a, b"fifo", libc::S_IFIFO | 0o644, 0, 0, 0)
        .unwrap();
    assert_eq!(fs.getattr(Ino::ROOT).unwrap().nlink, 4);
    assert_eq!(fs.getattr(a).unwrap().nlink, 4);
    assert_eq!(fs.getattr(b).unwrap().nlink, 2);
    // Moving a subdirectory moves one link from its old parent to its new one.
    fs.rename(a, b"x", b, b"x", NONE).unwrap();
    assert_eq!(fs.getattr(a).unwrap().nlink, 3);
    assert_eq!(fs.getattr(b).unwrap().nlink, 3);
    assert_eq!(
        fs.lookup(fs.lookup(b, b"x").unwrap().ino, b"..")
            .unwrap()
            .ino,
        b
    );
    fs.rmdir(a, b"y").unwrap();
    assert_eq!(fs.getattr(a).unwrap().nlink, 2);
}

#[test]
fn lookup_of_dot_and_dotdot_gives_the_directory_and_its_parent() {
    let fs = Env::new();
    let a = mkdir(&fs, Ino::ROOT, "a");
    let b = mkdir(&fs, a, "b");
    assert_eq!(fs.lookup(b, b".").unwrap().ino, b);
    assert_eq!(fs.lookup(b, b"..").unwrap().ino, a);
    assert_eq!(fs.lookup(a, b"..").unwrap().ino, Ino::ROOT);
    assert_eq!(fs.lookup(Ino::ROOT, b"..").unwrap().ino, Ino::ROOT);
}

#[test]
fn hard_links_share_an_inode_and_count_names() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    let f = write_file(&fs, Ino::ROOT, "f", b"shared bytes");
    let attr = fs.link(f, d, b"g").unwrap();
    assert_eq!(attr.ino, f);
    assert_eq!(attr.nlink, 2);
    fs.link(f, Ino::ROOT, b"h").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 3);
    assert_eq!(fs.lookup(d, b"g").unwrap().ino, f);
    // Writing through one name shows through all.
    let h = fs.open(f, libc::O_RDWR).unwrap();
    fs.write(f, h.fh, 0, b"SHARED").unwrap();
    fs.release(f, h.fh).unwrap();
    assert_eq!(
        read_file(&fs, fs.lookup(d, b"g").unwrap().ino),
        b"SHARED bytes"
    );
    // Unlinking one name leaves the others.
    fs.unlink(Ino::ROOT, b"f").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"f")), libc::ENOENT);
    assert_eq!(
        read_file(&fs, fs.lookup(Ino::ROOT, b"h").unwrap().ino),
        b"SHARED bytes"
    );
    fs.unlink(d, b"g").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    // Hard links of the same content do not count twice in the stats.
    assert_eq!(fs.stats().unwrap().logical_bytes, 12);
}

#[test]
fn linking_a_directory_is_not_permitted() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    assert_eq!(errno(fs.link(d, Ino::ROOT, b"d2")), libc::EPERM);
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
}

#[test]
fn linking_onto_an_existing_name_fails_with_eexist() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"1");
    write_file(&fs, Ino::ROOT, "g", b"2");
    assert_eq!(errno(fs.link(f, Ino::ROOT, b"g")), libc::EEXIST);
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
}

#[test]
fn symlinks_keep_their_target_bytes() {
    let fs = Env::new();
    let target = b"../some/where/\xff\x01 odd".to_vec();
    let a = fs.symlink(Ino::ROOT, b"l", &target, 0, 0).unwrap();
    assert_eq!(a.kind, FileKind::Symlink);
    assert_eq!(a.size, target.len() as u64);
    assert_eq!(fs.readlink(a.ino).unwrap(), target);
    assert_eq!(fs.lookup(Ino::ROOT, b"l").unwrap().ino, a.ino);
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    assert_eq!(errno(fs.readlink(f)), libc::EINVAL);
    assert_eq!(
        errno(fs.symlink(Ino::ROOT, b"empty", b"", 0, 0)),
        libc::ENOENT
    );
    let long = vec![b'a'; 4096];
    assert_eq!(
        errno(fs.symlink(Ino::ROOT, b"long", &long, 0, 0)),
        libc::ENAMETOOLONG
    );
    let max = vec![b'a'; 4095];
    let m = fs.symlink(Ino::ROOT, b"max", &max, 0, 0).unwrap();
    assert_eq!(fs.readlink(m.ino).unwrap(), max);
    // A symlink can be hard-linked, renamed and unlinked like a file.
    fs.link(a.ino, Ino::ROOT, b"l2").unwrap();
    fs.rename(Ino::ROOT, b"l", Ino::ROOT, b"l3", NONE).unwrap();
    assert_eq!(
        fs.readlink(fs.lookup(Ino::ROOT, b"l3").unwrap().ino)
            .unwrap(),
        target
    );
    fs.unlink(Ino::ROOT, b"l2").unwrap();
    assert_eq!(fs.getattr(a.ino).unwrap().nlink, 1);
}

#[test]
fn mknod_makes_fifos_sockets_and_device_nodes_with_rdev() {
    let fs = Env::new();
    let cases = [
        ("fifo", libc::S_IFIFO, FileKind::Fifo, 0),
        ("sock", libc::S_IFSOCK, FileKind::Socket, 0),
        ("chr", libc::S_IFCHR, FileKind::CharDev, 0x0103),
        ("blk", libc::S_IFBLK, FileKind::BlockDev, 0x0801),
        ("reg", libc::S_IFREG, FileKind::File, 0),
    ];
    for (name, ty, kind, rdev) in cases {
        let a = fs
            .mknod(Ino::ROOT, name.as_bytes(), ty | 0o640, rdev, 7, 8)
            .unwrap();
        assert_eq!(a.kind, kind, "{name}");
        assert_eq!(a.perm, 0o640, "{name}");
        assert_eq!((a.uid, a.gid), (7, 8), "{name}");
        assert_eq!(a.rdev, rdev, "{name}");
        assert_eq!(a.size, 0);
        assert_eq!(fs.lookup(Ino::ROOT, name.as_bytes()).unwrap(), a, "{name}");
    }
    // rdev means nothing for a fifo.
    let f = fs
        .mknod(Ino::ROOT, b"fifo2", libc::S_IFIFO | 0o600, 1234, 0, 0)
        .unwrap();
    assert_eq!(f.rdev, 0);
    // Special files hold no content: they cannot be opened for data or truncated.
    let fifo = fs.lookup(Ino::ROOT, b"fifo").unwrap().ino;
    assert_eq!(errno(fs.open(fifo, libc::O_RDONLY)), libc::EINVAL);
    let trunc = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(errno(fs.setattr(fifo, &trunc)), libc::EINVAL);
    let listed: Vec<_> = list(&fs, Ino::ROOT, 2)
        .into_iter()
        .map(|(n, _, k)| (String::from_utf8(n).unwrap(), k))
        .collect();
    assert!(listed.contains(&("blk".into(), FileKind::BlockDev)));
    assert!(listed.contains(&("sock".into(), FileKind::Socket)));
    assert_eq!(
        errno(fs.mknod(Ino::ROOT, b"bad", 0o170000 | 0o644, 0, 0, 0)),
        libc::EINVAL
    );
}

#[test]
fn rename_moves_a_file_and_replaces_an_existing_one() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    let a = write_file(&fs, Ino::ROOT, "a", b"aaa");
    let b = write_file(&fs, d, "b", b"bbb");
    fs.rename(Ino::ROOT, b"a", d, b"b", NONE).unwrap();
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"a")), libc::ENOENT);
    assert_eq!(fs.lookup(d, b"b").unwrap().ino, a);
    assert_eq!(read_file(&fs, a), b"aaa");
    // The replaced file lost its only name.
    assert_eq!(fs.getattr(b).unwrap().nlink, 0);
    assert_eq!(names(&fs, d), vec![b"b".to_vec()]);
    assert_eq!(fs.stats().unwrap().logical_bytes, 3);
}

#[test]
fn rename_onto_another_name_of_the_same_file_changes_nothing() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "a", b"x");
    fs.link(f, Ino::ROOT, b"b").unwrap();
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"b", NONE).unwrap();
    assert_eq!(fs.lookup(Ino::ROOT, b"a").unwrap().ino, f);
    assert_eq!(fs.lookup(Ino::ROOT, b"b").unwrap().ino, f);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    // Onto itself as well.
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"a", NONE).unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
}

#[test]
fn rename_of_a_directory_into_its_own_subtree_is_invalid() {
    let fs = Env::new();
    let a = mkdir(&fs, Ino::ROOT, "a");
    let b = mkdir(&fs, a, "b");
    let c = mkdir(&fs, b, "c");
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", a, b"x", NONE)),
        libc::EINVAL
    );
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", c, b"x", NONE)),
        libc::EINVAL
    );
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", c, b"x", EXCHANGE)),
        libc::EINVAL
    );
    // Exchanging with a descendant is just as circular, from either side.
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", b, b"c", EXCHANGE)),
        libc::EINVAL
    );
    assert_eq!(
        errno(fs.rename(b, b"c", Ino::ROOT, b"a", EXCHANGE)),
        libc::EINVAL
    );
    // A directory onto itself is fine.
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"a", NONE).unwrap();
    assert_eq!(fs.lookup(b, b"c").unwrap().ino, c);
    assert_eq!(fs.lookup(c, b"..").unwrap().ino, b);
}

#[test]
fn rename_of_a_directory_over_a_file_or_a_non_empty_directory_fails() {
    let fs = Env::new();
    let a = mkdir(&fs, Ino::ROOT, "a");
    let full = mkdir(&fs, Ino::ROOT, "full");
    write_file(&fs, full, "x", b"x");
    write_file(&fs, Ino::ROOT, "f", b"f");
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"f", NONE)),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"full", NONE)),
        libc::ENOTEMPTY
    );
    // Over an empty directory it replaces it, and the parent loses one link.
    mkdir(&fs, Ino::ROOT, "empty");
    assert_eq!(fs.getattr(Ino::ROOT).unwrap().nlink, 5);
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"empty", NONE)
        .unwrap();
    assert_eq!(fs.lookup(Ino::ROOT, b"empty").unwrap().ino, a);
    assert_eq!(fs.getattr(Ino::ROOT).unwrap().nlink, 4);
}

#[test]
fn rename_noreplace_refuses_an_existing_target_and_moves_otherwise() {
    let fs = Env::new();
    let a = write_file(&fs, Ino::ROOT, "a", b"a");
    let b = write_file(&fs, Ino::ROOT, "b", b"b");
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"b", NOREPLACE)),
        libc::EEXIST
    );
    assert_eq!(fs.lookup(Ino::ROOT, b"a").unwrap().ino, a);
    assert_eq!(fs.lookup(Ino::ROOT, b"b").unwrap().ino, b);
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"c", NOREPLACE)
        .unwrap();
    assert_eq!(fs.lookup(Ino::ROOT, b"c").unwrap().ino, a);
    let both = RenameFlags {
        noreplace: true,
        exchange: true,
    };
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"c", Ino::ROOT, b"b", both)),
        libc::EINVAL
    );
}

#[test]
fn rename_exchange_swaps_two_files() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    let a = write_file(&fs, Ino::ROOT, "a", b"aaa");
    let b = write_file(&fs, d, "b", b"bbb");
    fs.rename(Ino::ROOT, b"a", d, b"b", EXCHANGE).unwrap();
    assert_eq!(fs.lookup(Ino::ROOT, b"a").unwrap().ino, b);
    assert_eq!(fs.lookup(d, b"b").unwrap().ino, a);
    assert_eq!(read_file(&fs, a), b"aaa");
    assert_eq!(fs.getattr(a).unwrap().nlink, 1);
    assert_eq!(fs.getattr(b).unwrap().nlink, 1);
    assert_eq!(
        errno(fs.rename(Ino::ROOT, b"a", d, b"missing", EXCHANGE)),
        libc::ENOENT
    );
}

#[test]
fn rename_exchange_of_a_directory_and_a_file_across_parents_moves_the_parent_link() {
    let fs = Env::new();
    let p = mkdir(&fs, Ino::ROOT, "p");
    let q = mkdir(&fs, Ino::ROOT, "q");
    let dir = mkdir(&fs, p, "x");
    mkdir(&fs, dir, "inner");
    let file = write_file(&fs, q, "y", b"file");
    assert_eq!(fs.getattr(p).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 2);
    fs.rename(p, b"x", q, b"y", EXCHANGE).unwrap();
    assert_eq!(fs.lookup(p, b"x").unwrap().ino, file);
    assert_eq!(fs.lookup(q, b"y").unwrap().ino, dir);
    assert_eq!(fs.getattr(p).unwrap().nlink, 2);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(dir).unwrap().nlink, 3);
    assert_eq!(fs.lookup(dir, b"..").unwrap().ino, q);
    let kinds: Vec<_> = list(&fs, p, 10).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(kinds, vec![FileKind::File]);
}

#[test]
fn rename_exchange_of_two_directories_across_parents_keeps_parent_links() {
    let fs = Env::new();
    let p = mkdir(&fs, Ino::ROOT, "p");
    let q = mkdir(&fs, Ino::ROOT, "q");
    let x = mkdir(&fs, p, "x");
    let y = mkdir(&fs, q, "y");
    write_file(&fs, y, "child", b"c");
    fs.rename(p, b"x", q, b"y", EXCHANGE).unwrap();
    assert_eq!(fs.lookup(p, b"x").unwrap().ino, y);
    assert_eq!(fs.lookup(q, b"y").unwrap().ino, x);
    assert_eq!(fs.getattr(p).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.lookup(y, b"..").unwrap().ino, p);
    assert_eq!(fs.lookup(x, b"..").unwrap().ino, q);
    assert_eq!(names(&fs, y), vec![b"child".to_vec()]);
}

#[test]
fn rename_over_a_file_with_an_open_handle_keeps_the_old_bytes_readable_through_it() {
    let fs = Env::new();
    let old = write_file(&fs, Ino::ROOT, "target", b"old content");
    let h = fs.open(old, libc::O_RDWR).unwrap();
    let new = write_file(&fs, Ino::ROOT, "tmp", b"new content!");
    fs.rename(Ino::ROOT, b"tmp", Ino::ROOT, b"target", NONE)
        .unwrap();
    assert_eq!(fs.lookup(Ino::ROOT, b"target").unwrap().ino, new);
    assert_eq!(fs.read(old, h.fh, 0, 100).unwrap(), b"old content");
    assert_eq!(fs.getattr(old).unwrap().nlink, 0);
    // Still writable, and the write stays with the orphan.
    fs.write(old, h.fh, 0, b"OLD").unwrap();
    fs.fsync(old, h.fh, false).unwrap();
    assert_eq!(fs.read(old, h.fh, 0, 100).unwrap(), b"OLD content");
    fs.release(old, h.fh).unwrap();
    assert_eq!(read_file(&fs, new), b"new content!");
    assert_eq!(fs.stats().unwrap().logical_bytes, 12);
}

#[test]
fn unlink_of_an_open_file_keeps_it_readable_until_release() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"still here");
    let h = fs.open(f, libc::O_RDONLY).unwrap();
    fs.unlink(Ino::ROOT, b"f").unwrap();
    assert_eq!(errno(fs.lookup(Ino::ROOT, b"f")), libc::ENOENT);
    assert_eq!(fs.getattr(f).unwrap().nlink, 0);
    assert_eq!(fs.read(f, h.fh, 0, 100).unwrap(), b"still here");
    fs.release(f, h.fh).unwrap();
    assert!(names(&fs, Ino::ROOT).is_empty());
}

#[test]
fn readdir_lists_dot_dotdot_and_entries_with_kinds() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    let f = write_file(&fs, d, "f", b"x");
    let s = fs.symlink(d, b"s", b"f", 0, 0).unwrap().ino;
    let sub = mkdir(&fs, d, "sub");
    let h = fs.opendir(d).unwrap();
    let all = fs.readdir(d, 0, 100).unwrap();
    fs.releasedir(d, h).unwrap();
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.name.clone(), e.ino, e.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (b".".to_vec(), d, FileKind::Dir),
            (b"..".to_vec(), Ino::ROOT, FileKind::Dir),
            (b"f".to_vec(), f, FileKind::File),
            (b"s".to_vec(), s, FileKind::Symlink),
            (b"sub".to_vec(), sub, FileKind::Dir),
        ]
    );
    // Offsets resume after the entry they come from.
    for (i, e) in all.iter().enumerate() {
        let rest = fs.readdir(d, e.next_offset, 100).unwrap();
        assert_eq!(rest, all[i + 1..].to_vec());
    }
    assert_eq!(errno(fs.releasedir(d, h)), libc::EBADF);
}

#[test]
fn readdirplus_gives_each_entry_its_current_attributes() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", &[7; 5000]);
    let d = mkdir(&fs, Ino::ROOT, "d");
    fs.link(f, d, b"again").unwrap();
    let h = fs.open(f, libc::O_RDWR).unwrap();
    fs.write(f, h.fh, 5000, b"uncommitted tail").unwrap();
    let plus = fs.readdirplus(Ino::ROOT, 0, 100).unwrap();
    assert_eq!(plus.len(), 4);
    for (e, a) in &plus {
        assert_eq!(e.ino, a.ino);
        assert_eq!(e.kind, a.kind);
        assert_eq!(*a, fs.getattr(e.ino).unwrap(), "{:?}", e.name);
    }
    let (_, fa) = plus.iter().find(|(e, _)| e.name == b"f").unwrap();
    assert_eq!(fa.size, 5016);
    assert_eq!(fa.nlink, 2);
    fs.release(f, h.fh).unwrap();
}

#[test]
fn readdir_offsets_stay_valid_while_entries_come_and_go() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    for i in 0..40 {
        write_file(&fs, d, &format!("keep{i:02}"), b"");
        write_file(&fs, d, &format!("drop{i:02}"), b"");
    }
    let mut seen = Vec::new();
    let mut off = 0;
    let mut round = 0;
    loop {
        let page = fs.readdir(d, off, 7).unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            seen.push(e.name.clone());
            off = e.next_offset;
        }
        // Between pages: remove some not yet listed, some listed, and add new ones.
        // (Only for a while, so that the listing catches up with the additions.)
        if round < 12 {
            for j in 0..3 {
                let k = round * 3 + j;
                fs.unlink(d, format!("drop{k:02}").as_bytes()).unwrap();
                write_file(&fs, d, &format!("new{round:02}_{j}"), b"");
            }
        }
        round += 1;
        assert!(round < 100, "readdir does not terminate");
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was returned twice");
    for i in 0..40 {
        let name = format!("keep{i:02}").into_bytes();
        assert!(
            unique.contains(&name),
            "{} never listed",
            String::from_utf8_lossy(&name)
        );
    }
}

#[test]
fn setattr_changes_mode_owner_and_times() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    let t1 = UNIX_EPOCH + Duration::new(1_000_000_000, 123);
    let t2 = UNIX_EPOCH + Duration::new(1_500_000_000, 456_789);
    let a = fs
        .setattr(
            f,
            &SetAttr {
                mode: Some(0o4751),
                uid: None,
                gid: None,
                size: None,
                atime: Some(TimeSet::At(t1)),
                mtime: Some(TimeSet::At(t2)),
                ctime: None,
            },
        )
        .unwrap();
    assert_eq!(a.perm, 0o4751);
    assert_eq!(a.atime, t1);
    assert_eq!(a.mtime, t2);
    // A chown clears set-uid, as the kernel does.
    let a = fs
        .setattr(
            f,
            &SetAttr {
                uid: Some(1000),
                gid: Some(2000),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!((a.uid, a.gid), (1000, 2000));
    assert_eq!(a.perm, 0o751);
    let before = fs.getattr(f).unwrap().ctime;
    std::thread::sleep(Duration::from_millis(2));
    let a = fs
        .setattr(
            f,
            &SetAttr {
                mtime: Some(TimeSet::Now),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert!(a.mtime > t2);
    assert!(a.ctime > before);
    // Directories too.
    let d = mkdir(&fs, Ino::ROOT, "d");
    let a = fs
        .setattr(
            d,
            &SetAttr {
                mode: Some(0o700),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(a.perm, 0o700);
    assert_eq!(a.kind, FileKind::Dir);
}

#[test]
fn explicit_mtime_wins_over_pending_writes() {
    let fs = Env::new();
    let f = write_file(&fs, Ino::ROOT, "f", b"x");
    let h = fs.open(f, libc::O_RDWR).unwrap();
    fs.write(f, h.fh, 0, b"yy").unwrap();
    let t = UNIX_EPOCH + Duration::from_secs(42);
    fs.setattr(
        f,
        &SetAttr {
            mtime: Some(TimeSet::At(t)),
            ..SetAttr::default()
        },
    )
    .unwrap();
    fs.release(f, h.fh).unwrap();
    assert_eq!(fs.getattr(f).unwrap().mtime, t);
    assert_eq!(read_file(&fs, f), b"yy");
}

#[test]
fn writes_update_mtime_and_directory_changes_update_the_directory() {
    let fs = Env::new();
    let d = mkdir(&fs, Ino::ROOT, "d");
    let before = fs.getattr(d).unwrap().mtime;
    std::thread::sleep(Duration::from_millis(2));
    let f = write_file(&fs, d, "f", b"1");
    let after = fs.getattr(d).unwrap().mtime;
    assert!(after > before);
    let m1 = fs.getattr(f).unwrap().mtime;
    std::thread::sleep(Duration::from_millis(2));
    let h = fs.open(f, libc::O_RDWR).unwrap();
    fs.write(f, h.fh, 1, b"2").unwrap();
    assert!(
        fs.getattr(f).unwrap().mtime > m1,
        "a pending write shows in getattr"
    );
    fs.release(f, h.fh).unwrap();
    assert!(fs.getattr(f).unwrap().mtime > m1);
}

#[test]
fn access_follows_owner_group_and_other_bits() {
    let fs = Env::new();
    let f = fs
        .mknod(Ino::ROOT, b"f", libc::S_IFREG | 0o640, 0, 1000, 100)
        .unwrap()
        .ino;
    let (r, w, x) = (libc::R_OK, libc::W_OK, libc::X_OK);
    fs.access(f, libc::F_OK, 5, 5).unwrap();
    fs.access(f, r | w, 1000, 1).unwrap();
    assert_eq!(errno(fs.access(f, x, 1000, 1)), libc::EACCES);
    fs.access(f, r, 2000, 100).unwrap();
    assert_eq!(errno(fs.access(f, w, 2000, 100)), libc::EACCES);
    assert_eq!(errno(fs.access(f, r, 2000, 200)), libc::EACCES);
    // root reads and writes anything, but executes only what someone may execute.
    fs.access(f, r | w, 0, 0).unwrap();
    assert_eq!(errno(fs.access(f, x, 0, 0)), libc::EACCES);
    let d = fs.mkdir(Ino::ROOT, b"d", 0o700, 1000, 100).unwrap().ino;
    fs.access(d, x, 0, 0).unwrap();
    fs.access(d, r | w | x, 1000, 100).unwrap();
    assert_eq!(errno(fs.access(d, x, 1001, 100)), libc::EACCES);
    assert_eq!(
        errno(fs.access(Ino(999_999), libc::F_OK, 0, 0)),
        libc::ENOENT
    );
}

#[test]
fn a_setgid_directory_passes_its_group_and_the_bit_to_new_subdirectories() {
    let fs = Env::new();
    let d = fs.mkdir(Ino::ROOT, b"d", 0o2775, 0, 500).unwrap().ino;
    let f = fs.mknod(d, b"f", libc::S_IFREG | 0o644, 0, 7, 7).unwrap();
    assert_eq!(f.gid, 500);
    let sub = fs.mkdir(d, b"sub", 0o755, 7, 7).unwrap();
    assert_eq!(sub.gid, 500);
    assert_eq!(sub.perm & 0o2000, 0o2000);
}

#[test]
fn the_namespace_survives_a_reopen() {
    let mut fs = Env::new();
    let a = mkdir(&fs, Ino::ROOT, "a");
    let f = write_file(&fs, a, "f", b"content");
    fs.link(f, Ino::ROOT, b"hard").unwrap();
    fs.symlink(a, b"s", b"../hard", 0, 0).unwrap();
    fs.mknod(a, b"c", libc::S_IFCHR | 0o600, 0x0501, 0, 0)
        .unwrap();
    fs.setxattr(f, b"user.k", b"v", 0).unwrap();
    fs.rename(Ino::ROOT, b"a", Ino::ROOT, b"b", NONE).unwrap();
    let before = tree(&fs, Ino::ROOT);
    let attrs = fs.getattr(f).unwrap();
    fs.reopen();
    assert_eq!(tree(&fs, Ino::ROOT), before);
    assert_eq!(fs.getattr(f).unwrap(), attrs);
    let b = fs.lookup(Ino::ROOT, b"b").unwrap().ino;
    assert_eq!(fs.lookup(b, b"c").unwrap().rdev, 0x0501);
    assert_eq!(fs.getxattr(f, b"user.k").unwrap(), b"v");
    // New inodes after a reopen do not reuse numbers.
    let g = write_file(&fs, Ino::ROOT, "g", b"");
    assert!(before.values().all(|(ino, _)| *ino != g));
}
