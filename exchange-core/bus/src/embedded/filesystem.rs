//! What the embedded bus checks about the file system its data directory is on.
//!
//! One setting there decides the bus's latency tail: **online discard** (the `discard` mount option of ext4 and
//! XFS, `discard=sync` on btrfs). With it, every file the store deletes — a journal once flushed, a segment once
//! compacted — is trimmed on the device inside the file system's journal commit, and every fsync waits behind
//! it. Measured on the 2-vCPU benchmark machine (`docs/benchmarks.md`), the p99 from publish to a subscription's
//! topic was 46–157 ms with online discard and 11–16 ms without. The usual advice, followed here: mount the data
//! volume without `discard` and trim it periodically (`systemctl enable --now fstrim.timer`).
//!
//! The check reads the kernel's mount table (`/proc/self/mounts`); where there is none (not Linux), it says
//! nothing.

use std::path::{Path, PathBuf};

/// The file system a path is on, as the mount table describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSystem {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its type (`ext4`, `xfs`, `btrfs`, …).
    pub fs_type: String,
    /// Its mount options, as listed.
    pub options: Vec<String>,
}

impl FileSystem {
    /// The file system `path` is on, or `None` when the mount table cannot be read or names none.
    pub fn of(path: &Path) -> Option<Self> {
        let path = std::fs::canonicalize(path).ok()?;
        let table = std::fs::read_to_string("/proc/self/mounts").ok()?;
        Self::from_mount_table(&table, &path)
    }

    /// The entry of `table` (in the `/proc/self/mounts` format) with the longest mount point that holds `path`.
    pub fn from_mount_table(table: &str, path: &Path) -> Option<Self> {
        table
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let _source = fields.next()?;
                let mount_point = PathBuf::from(unescape(fields.next()?));
                let fs_type = fields.next()?.to_owned();
                let options = fields.next()?.split(',').map(str::to_owned).collect();
                path.starts_with(&mount_point).then_some(Self {
                    mount_point,
                    fs_type,
                    options,
                })
            })
            // Later entries mount over earlier ones at the same point: on a tie, the last one wins.
            .fold(None, |best: Option<Self>, fs| match best {
                Some(b)
                    if b.mount_point.components().count() > fs.mount_point.components().count() =>
                {
                    Some(b)
                }
                _ => Some(fs),
            })
    }

    /// Whether deleted files are trimmed synchronously, inside the file system's journal commit.
    pub fn online_discard(&self) -> bool {
        self.options
            .iter()
            .any(|o| o == "discard" || o == "discard=sync")
    }
}

/// Undoes the mount table's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
/dev/vda / ext4 rw,relatime,discard,resv_strict 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/vdb /var/lib/unsilo xfs rw,relatime,attr2,inode64,noquota 0 0
/dev/vdc /srv/data\\040hub btrfs rw,ssd,discard=async,space_cache=v2 0 0
/dev/vdd /mnt/sync btrfs rw,ssd,discard=sync 0 0
tmpfs /var/lib/unsilo/tmp tmpfs rw 0 0
";

    fn of(path: &str) -> FileSystem {
        FileSystem::from_mount_table(TABLE, Path::new(path)).expect("mounted")
    }

    #[test]
    fn the_deepest_mount_holding_the_path_is_chosen() {
        assert_eq!(of("/home/u/data").mount_point, Path::new("/"));
        let var = of("/var/lib/unsilo/data/bus");
        assert_eq!(
            (var.mount_point.as_path(), var.fs_type.as_str()),
            (Path::new("/var/lib/unsilo"), "xfs")
        );
        assert_eq!(of("/var/lib/unsilo/tmp/x").fs_type, "tmpfs");
        // A mount point is a whole path component: /var/lib/unsilo2 is not under /var/lib/unsilo.
        assert_eq!(of("/var/lib/unsilo2").mount_point, Path::new("/"));
        assert_eq!(
            of("/srv/data hub/bus").mount_point,
            Path::new("/srv/data hub")
        );
        assert_eq!(FileSystem::from_mount_table("", Path::new("/x")), None);
    }

    #[test]
    fn only_synchronous_discard_counts() {
        assert!(of("/data").online_discard());
        assert!(!of("/var/lib/unsilo").online_discard());
        assert!(
            !of("/srv/data hub").online_discard(),
            "btrfs's async discard does not stall commits"
        );
        assert!(of("/mnt/sync/x").online_discard());
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let table = "garbage\n\n/dev/vda / ext4\n/dev/vdb /data ext4 rw,discard 0 0\n";
        let fs = FileSystem::from_mount_table(table, Path::new("/data/bus")).expect("mounted");
        assert!(fs.online_discard());
        assert_eq!(unescape("a\\040b\\\\c\\9"), "a b\\\\c\\9");
    }
}
