mod common;
use chunkfs::fs::Ino;
use common::*;

#[test]
fn a_written_file_reads_back_after_reopen() {
    let ts = TestStore::new(64 << 20);
    let data = random_bytes(1, 300_000);
    {
        let fs = ts.open();
        let ino = write_file(&fs, Ino::ROOT, "a", &data);
        assert_eq!(read_file(&fs, ino), data);
        assert_consistent(&fs);
        fs.close().unwrap();
    }
    let fs = ts.open();
    let attr = fs.lookup(Ino::ROOT, b"a").unwrap();
    assert_eq!(attr.size, data.len() as u64);
    assert_eq!(read_file(&fs, attr.ino), data);
    assert_consistent(&fs);
}

#[test]
fn identical_files_are_stored_once() {
    let ts = TestStore::new(64 << 20);
    let fs = ts.open();
    let data = random_bytes(2, 200_000);
    write_file(&fs, Ino::ROOT, "a", &data);
    let before = fs.stats().unwrap();
    write_file(&fs, Ino::ROOT, "b", &data);
    let after = fs.stats().unwrap();
    assert_eq!(before.stored_bytes, after.stored_bytes);
    assert_eq!(after.logical_bytes, 2 * data.len() as u64);
    assert_consistent(&fs);
}
