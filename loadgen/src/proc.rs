//! A process's CPU time and resident memory, from Linux's `/proc`.

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`: 100 on every Linux
/// this runs on).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime in clock ticks, and VmRSS in KiB; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields start after the last ')'.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some((ticks, rss))
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let start = super::usage(std::process::id()).expect("own /proc");
        // Burn a little CPU so utime moves past a tick.
        let mut x = 1u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let end = super::usage(std::process::id()).expect("own /proc");
        assert!(end.0 > start.0, "cpu ticks {start:?} → {end:?}");
        assert!(end.1 > 100, "rss {} KiB", end.1);
        assert_eq!(super::usage(u32::MAX), None);
    }
}
