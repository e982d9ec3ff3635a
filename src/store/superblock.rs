//! The superblock: the first 4 KiB of the device. It names the store (uuid), fixes the
//! parameters every later byte depends on (format version, sector size, chunking bounds,
//! superchunk target, capacity), and is the only block ever rewritten in place. Byte layout in
//! docs/FORMAT.md.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use super::device::Device;
use super::{Result, SECTOR, StoreError};
use crate::chunker::ChunkParams;

/// The data area starts here.
pub const SUPERBLOCK_LEN: u64 = 4096;
pub const FORMAT_VERSION: u32 = 1;
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"CHUNKFS\0";

// Field offsets, little-endian; see docs/FORMAT.md.
const OFF_VERSION: usize = 8;
const OFF_SECTOR: usize = 12;
const OFF_UUID: usize = 16;
const OFF_CHUNK_MIN: usize = 32;
const OFF_CHUNK_AVG: usize = 36;
const OFF_CHUNK_MAX: usize = 40;
const OFF_SUPERCHUNK_TARGET: usize = 44;
const OFF_CAPACITY: usize = 48;
const OFF_CREATED: usize = 56;
/// The checksum sits at the very end so it covers every other byte, reserved ones included:
/// a flipped bit anywhere in the block is caught.
const OFF_CHECKSUM: usize = SUPERBLOCK_LEN as usize - 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
    pub format_version: u32,
    pub sector_size: u32,
    pub chunk: ChunkParams,
    /// Target payload size of a superchunk in bytes.
    pub superchunk_target: u32,
    /// Logical size of the device in bytes (sector multiple).
    pub capacity: u64,
    pub created_unix: u64,
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "superblock",
        detail: detail.into(),
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// A random v4 uuid. /dev/urandom spares a dependency; if it is unreadable (a stripped
/// container) a hash of time, pid and a stack address still makes collisions between two
/// stores on one machine practically impossible, which is all the uuid is for.
fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    let from_urandom =
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut uuid));
    if from_urandom.is_err() {
        let mut h = blake3::Hasher::new();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        h.update(&now.as_nanos().to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.update(&(&uuid as *const _ as usize).to_le_bytes());
        uuid.copy_from_slice(&h.finalize().as_bytes()[..16]);
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

impl Superblock {
    /// A fresh superblock with a random uuid, the current format version and the time now.
    pub fn new(chunk: ChunkParams, superchunk_target: u32, capacity: u64) -> Superblock {
        let created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Superblock {
            uuid: random_uuid(),
            format_version: FORMAT_VERSION,
            sector_size: SECTOR as u32,
            chunk,
            superchunk_target,
            capacity,
            created_unix,
        }
    }

    /// Exactly SUPERBLOCK_LEN bytes, little-endian, magic first, checksum last.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_LEN as usize];
        b[..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[OFF_VERSION..][..4].copy_from_slice(&self.format_version.to_le_bytes());
        b[OFF_SECTOR..][..4].copy_from_slice(&self.sector_size.to_le_bytes());
        b[OFF_UUID..][..16].copy_from_slice(&self.uuid);
        b[OFF_CHUNK_MIN..][..4].copy_from_slice(&self.chunk.min.to_le_bytes());
        b[OFF_CHUNK_AVG..][..4].copy_from_slice(&self.chunk.avg.to_le_bytes());
        b[OFF_CHUNK_MAX..][..4].copy_from_slice(&self.chunk.max.to_le_bytes());
        b[OFF_SUPERCHUNK_TARGET..][..4].copy_from_slice(&self.superchunk_target.to_le_bytes());
        b[OFF_CAPACITY..][..8].copy_from_slice(&self.capacity.to_le_bytes());
        b[OFF_CREATED..][..8].copy_from_slice(&self.created_unix.to_le_bytes());
        let sum = blake3::hash(&b[..OFF_CHECKSUM]);
        b[OFF_CHECKSUM..].copy_from_slice(sum.as_bytes());
        b
    }

    /// The version is checked before the checksum so that a newer format, whose layout (and
    /// checksum placement) may differ, is reported as newer rather than as corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Superblock> {
        if bytes.len() < OFF_VERSION + 4 || bytes[..8] != SUPERBLOCK_MAGIC {
            return Err(StoreError::NoSuperblock);
        }
        let format_version = u32_at(bytes, OFF_VERSION);
        if format_version > FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes.len() < SUPERBLOCK_LEN as usize {
            return Err(corrupt(format!("truncated to {} bytes", bytes.len())));
        }
        let b = &bytes[..SUPERBLOCK_LEN as usize];
        if blake3::hash(&b[..OFF_CHECKSUM]).as_bytes() != &b[OFF_CHECKSUM..] {
            return Err(corrupt("checksum mismatch"));
        }
        let sb = Superblock {
            uuid: b[OFF_UUID..OFF_UUID + 16].try_into().expect("16 bytes"),
            format_version,
            sector_size: u32_at(b, OFF_SECTOR),
            chunk: ChunkParams {
                min: u32_at(b, OFF_CHUNK_MIN),
                avg: u32_at(b, OFF_CHUNK_AVG),
                max: u32_at(b, OFF_CHUNK_MAX),
            },
            superchunk_target: u32_at(b, OFF_SUPERCHUNK_TARGET),
            capacity: u64_at(b, OFF_CAPACITY),
            created_unix: u64_at(b, OFF_CREATED),
        };
        sb.validate()?;
        Ok(sb)
    }

    /// Reject values that pass the checksum but that no mkfs would write, so later code can
    /// rely on them (a zero avg would divide by zero in the chunker, for one).
    pub fn validate(&self) -> Result<()> {
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return Err(corrupt(format!("format version {}", self.format_version)));
        }
        if u64::from(self.sector_size) != SECTOR {
            return Err(corrupt(format!(
                "sector size {} (expected {SECTOR})",
                self.sector_size
            )));
        }
        let c = self.chunk;
        if c.min == 0 || c.min > c.avg || c.avg > c.max {
            return Err(corrupt(format!(
                "chunk sizes min {} avg {} max {}",
                c.min, c.avg, c.max
            )));
        }
        if self.superchunk_target == 0 {
            return Err(corrupt("superchunk target is zero"));
        }
        if !self.capacity.is_multiple_of(SECTOR) || self.capacity < SUPERBLOCK_LEN {
            return Err(corrupt(format!(
                "capacity {} is not a sector multiple",
                self.capacity
            )));
        }
        Ok(())
    }

    pub fn read(dev: &dyn Device) -> Result<Superblock> {
        if dev.len()? < SUPERBLOCK_LEN {
            return Err(StoreError::NoSuperblock);
        }
        let mut buf = vec![0u8; SUPERBLOCK_LEN as usize];
        dev.read_at(&mut buf, 0)?;
        Superblock::decode(&buf)
    }

    /// Durable when it returns: the superblock is what makes a device a store.
    pub fn write(&self, dev: &dyn Device) -> Result<()> {
        dev.grow(SUPERBLOCK_LEN)?;
        dev.write_at(&self.encode(), 0)?;
        dev.sync()?;
        Ok(())
    }

    /// The uuid in the usual 8-4-4-4-12 hex form.
    pub fn uuid_string(&self) -> String {
        let hex: String = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::device::MemDevice;

    fn sample() -> Superblock {
        Superblock::new(ChunkParams::from_avg(64 * 1024), 4 << 20, 1 << 30)
    }

    #[test]
    fn superblock_round_trips_through_a_device() {
        let sb = sample();
        let dev = MemDevice::new();
        sb.write(&dev).unwrap();
        assert_eq!(dev.len().unwrap(), SUPERBLOCK_LEN);
        assert_eq!(&dev.bytes()[..8], b"CHUNKFS\0");
        assert_eq!(Superblock::read(&dev).unwrap(), sb);
        assert_eq!(sb.encode().len(), SUPERBLOCK_LEN as usize);
    }

    #[test]
    fn superblock_layout_matches_docs_format_md() {
        let sb = sample();
        let b = sb.encode();
        assert_eq!(u32_at(&b, 8), 1);
        assert_eq!(u32_at(&b, 12), 4096);
        assert_eq!(&b[16..32], &sb.uuid);
        assert_eq!(u32_at(&b, 36), 64 * 1024);
        assert_eq!(u32_at(&b, 44), 4 << 20);
        assert_eq!(u64_at(&b, 48), 1 << 30);
        assert!(b[64..4064].iter().all(|&x| x == 0));
        assert_eq!(&b[4064..], blake3::hash(&b[..4064]).as_bytes());
    }

    #[test]
    fn superblock_uuids_are_random_v4_and_print_as_8_4_4_4_12() {
        let (a, b) = (sample(), sample());
        assert_ne!(a.uuid, b.uuid);
        let s = a.uuid_string();
        let parts: Vec<usize> = s.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&s[14..15], "4");
    }

    #[test]
    fn superblock_wrong_magic_means_no_superblock() {
        let mut b = sample().encode();
        b[0] = b'X';
        assert!(matches!(
            Superblock::decode(&b),
            Err(StoreError::NoSuperblock)
        ));
        assert!(matches!(
            Superblock::decode(&[0u8; 4096]),
            Err(StoreError::NoSuperblock)
        ));
    }

    #[test]
    fn superblock_read_from_a_short_device_means_no_superblock() {
        let dev = MemDevice::from_bytes(sample().encode()[..100].to_vec());
        assert!(matches!(
            Superblock::read(&dev),
            Err(StoreError::NoSuperblock)
        ));
    }

    #[test]
    fn superblock_newer_version_is_reported_even_if_the_checksum_differs() {
        let mut b = sample().encode();
        b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&2u32.to_le_bytes());
        match Superblock::decode(&b) {
            Err(StoreError::NewerFormat {
                found: 2,
                supported: FORMAT_VERSION,
            }) => {}
            other => panic!("expected NewerFormat, got {other:?}"),
        }
    }

    #[test]
    fn superblock_any_flipped_byte_is_corrupt() {
        let good = sample().encode();
        // Every field and some reserved bytes, but not magic or version (reported otherwise).
        for off in [12, 16, 31, 32, 44, 48, 56, 63, 64, 2000, OFF_CHECKSUM, 4095] {
            let mut b = good.clone();
            b[off] ^= 0x01;
            match Superblock::decode(&b) {
                Err(StoreError::Corrupt {
                    what: "superblock", ..
                }) => {}
                other => panic!("flip at {off}: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn superblock_with_impossible_values_is_corrupt_even_with_a_good_checksum() {
        let mut sb = sample();
        sb.chunk.min = sb.chunk.max + 1;
        assert!(matches!(
            Superblock::decode(&sb.encode()),
            Err(StoreError::Corrupt { .. })
        ));
        let mut sb = sample();
        sb.capacity = SECTOR * 10 + 1;
        assert!(matches!(
            Superblock::decode(&sb.encode()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
