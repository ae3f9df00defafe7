//! Real memory readings for the `memory_used` / `memory_limit` imports: cgroup v2, then cgroup
//! v1, then `/proc/meminfo`. Parsers take file contents, so each is tested on fixtures.

use std::fs;
use std::path::{Path, PathBuf};

use pacer::MemoryReading;

/// cgroup v1 reports "no limit" as a huge page-aligned value near `i64::MAX`.
const V1_UNLIMITED_ABOVE: u64 = 1 << 60;

/// Where this process's memory numbers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemorySource {
    /// A cgroup v2 directory (`memory.current`, `memory.max`).
    CgroupV2(PathBuf),
    /// A cgroup v1 memory directory (`memory.usage_in_bytes`, `memory.limit_in_bytes`).
    CgroupV1(PathBuf),
    /// The whole machine: `MemTotal - MemAvailable` of `MemTotal`.
    Meminfo(PathBuf),
}

impl MemorySource {
    /// Finds this process's source under `root` (`/` in production, a fixture tree in tests).
    pub fn detect(root: &Path) -> MemorySource {
        let meminfo = root.join("proc/meminfo");
        let cgroups = fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
        for line in cgroups.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let relative = path.trim_start_matches('/');
            if controllers.is_empty() {
                // cgroup v2: the process's own directory, else the mount root (in a namespace).
                let base = root.join("sys/fs/cgroup");
                for dir in [base.join(relative), base.clone()] {
                    if dir.join("memory.current").is_file() {
                        return MemorySource::CgroupV2(dir);
                    }
                }
            } else if controllers.split(',').any(|c| c == "memory") {
                let base = root.join("sys/fs/cgroup/memory");
                for dir in [base.join(relative), base.clone()] {
                    if dir.join("memory.usage_in_bytes").is_file() {
                        return MemorySource::CgroupV1(dir);
                    }
                }
            }
        }
        MemorySource::Meminfo(meminfo)
    }

    /// Reads the numbers now; anything unreadable is reported as unknown.
    pub fn read(&self) -> MemoryReading {
        match self {
            MemorySource::CgroupV2(dir) => {
                let current = read(&dir.join("memory.current"));
                let max = read(&dir.join("memory.max"));
                let machine = self.machine_total(dir);
                parse_cgroup_v2(&current, &max, machine)
            }
            MemorySource::CgroupV1(dir) => {
                let usage = read(&dir.join("memory.usage_in_bytes"));
                let limit = read(&dir.join("memory.limit_in_bytes"));
                let machine = self.machine_total(dir);
                parse_cgroup_v1(&usage, &limit, machine)
            }
            MemorySource::Meminfo(path) => parse_meminfo(&read(path)),
        }
    }

    /// The machine's total, the limit of a cgroup that has none of its own.
    fn machine_total(&self, cgroup_dir: &Path) -> Option<u64> {
        // cgroup_dir is <root>/sys/fs/cgroup[/memory][/...]: find <root>/proc/meminfo.
        let root = cgroup_dir
            .ancestors()
            .find(|p| p.join("proc/meminfo").is_file())?;
        parse_meminfo(&read(&root.join("proc/meminfo"))).limit
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// cgroup v2: `memory.current` and `memory.max` (`max` = no limit: the machine's total).
pub fn parse_cgroup_v2(current: &str, max: &str, machine_total: Option<u64>) -> MemoryReading {
    let limit = match max.trim() {
        "max" => machine_total,
        other => number(other).map(|l| machine_total.map_or(l, |m| l.min(m))),
    };
    MemoryReading {
        used: number(current),
        limit: limit.filter(|&l| l > 0),
    }
}

/// cgroup v1: `memory.usage_in_bytes` and `memory.limit_in_bytes` (huge = no limit).
pub fn parse_cgroup_v1(usage: &str, limit: &str, machine_total: Option<u64>) -> MemoryReading {
    let limit = match number(limit) {
        Some(l) if l >= V1_UNLIMITED_ABOVE => machine_total,
        Some(l) => Some(machine_total.map_or(l, |m| l.min(m))),
        None => None,
    };
    MemoryReading {
        used: number(usage),
        limit: limit.filter(|&l| l > 0),
    }
}

/// `/proc/meminfo`: used = `MemTotal - MemAvailable`, limit = `MemTotal` (values in kB).
pub fn parse_meminfo(meminfo: &str) -> MemoryReading {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kb.checked_mul(1024)
        })
    };
    let total = field("MemTotal");
    let available = field("MemAvailable");
    let used = match (total, available) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        _ => None,
    };
    MemoryReading {
        used,
        limit: total.filter(|&t| t > 0),
    }
}
