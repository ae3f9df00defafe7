//! Memory readings from fixture trees shaped like /proc and /sys/fs/cgroup, and from this machine.

use std::path::{Path, PathBuf};

use pacer::MemoryReading;
use pacer_host::memory::{MemorySource, parse_cgroup_v1, parse_cgroup_v2, parse_meminfo};

const MEMINFO_TOTAL: u64 = 24_684_096 * 1024;
const MEMINFO_USED: u64 = (24_684_096 - 24_074_816) * 1024;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn cgroup_v2_with_a_limit() {
    let source = MemorySource::detect(&fixture("cgroup_v2"));
    assert_eq!(
        source,
        MemorySource::CgroupV2(fixture("cgroup_v2").join("sys/fs/cgroup/user.slice/app"))
    );
    assert_eq!(
        source.read(),
        MemoryReading::new(734_003_200, 1_073_741_824)
    );
}

#[test]
fn cgroup_v2_without_a_limit_uses_the_machine_total() {
    let source = MemorySource::detect(&fixture("cgroup_v2_unlimited"));
    assert_eq!(
        source,
        MemorySource::CgroupV2(fixture("cgroup_v2_unlimited").join("sys/fs/cgroup"))
    );
    assert_eq!(source.read(), MemoryReading::new(52_428_800, MEMINFO_TOTAL));
}

#[test]
fn cgroup_v1_with_a_limit() {
    let source = MemorySource::detect(&fixture("cgroup_v1"));
    assert_eq!(
        source,
        MemorySource::CgroupV1(fixture("cgroup_v1").join("sys/fs/cgroup/memory/docker/abc"))
    );
    assert_eq!(
        source.read(),
        MemoryReading::new(900_000_000, 1_000_000_000)
    );
}

#[test]
fn cgroup_v1_unlimited_falls_back_to_the_hierarchy_root_and_machine_total() {
    // As on this project's machines: the process's cgroup path is not mounted, its root is,
    // and the limit is v1's huge "unlimited" value.
    let source = MemorySource::detect(&fixture("cgroup_v1_unlimited"));
    assert_eq!(
        source,
        MemorySource::CgroupV1(fixture("cgroup_v1_unlimited").join("sys/fs/cgroup/memory"))
    );
    assert_eq!(
        source.read(),
        MemoryReading::new(1_652_236_288, MEMINFO_TOTAL)
    );
}

#[test]
fn meminfo_when_there_is_no_cgroup() {
    let source = MemorySource::detect(&fixture("meminfo_only"));
    assert_eq!(
        source,
        MemorySource::Meminfo(fixture("meminfo_only").join("proc/meminfo"))
    );
    assert_eq!(
        source.read(),
        MemoryReading::new(MEMINFO_USED, MEMINFO_TOTAL)
    );
}

#[test]
fn unreadable_or_malformed_values_are_unknown() {
    assert_eq!(parse_cgroup_v2("", "max", None), MemoryReading::default());
    assert_eq!(
        parse_cgroup_v2("12\n", "garbage", Some(100)),
        MemoryReading {
            used: Some(12),
            limit: None
        }
    );
    assert_eq!(
        parse_cgroup_v1("7", "9223372036854771712", None),
        MemoryReading {
            used: Some(7),
            limit: None
        }
    );
    assert_eq!(
        parse_cgroup_v1("7", "0", Some(100)),
        MemoryReading {
            used: Some(7),
            limit: None
        }
    );
    assert_eq!(
        parse_cgroup_v1("x", "50", Some(100)),
        MemoryReading {
            used: None,
            limit: Some(50)
        }
    );
    assert_eq!(
        parse_meminfo("MemTotal: 100 kB\n"),
        MemoryReading {
            used: None,
            limit: Some(102_400)
        }
    );
    assert_eq!(parse_meminfo("nonsense"), MemoryReading::default());
    let missing = MemorySource::Meminfo(PathBuf::from("/nonexistent/meminfo"));
    assert_eq!(missing.read(), MemoryReading::default());
}

#[test]
fn this_machine_gives_a_known_reading() {
    let reading = MemorySource::detect(Path::new("/")).read();
    let (used, limit) = (
        reading.used.expect("used is known here"),
        reading.limit.expect("limit is known here"),
    );
    assert!(used > 0 && used < limit, "{used} of {limit}");
}
