//! What the process measures about itself (memory, CPU time) for `train_stats.json`
//! (`model::run_folder::TrainStats`) and the benchmark.

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`);
/// `None` where the file does not exist (not Linux).
pub fn peak_memory_mib() -> Option<f64> {
    proc_status_kib("VmHWM").map(|k| k as f64 / 1024.0)
}

/// Current resident set size in MiB (`VmRSS`).
pub fn current_memory_mib() -> Option<f64> {
    proc_status_kib("VmRSS").map(|k| k as f64 / 1024.0)
}

/// CPU time (user + system, all threads) this process has used, seconds: the cost of work on
/// a machine shared with other jobs, where wall time also counts the waiting.
pub fn process_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu_ticks(&text).map(|t| t as f64 / CLOCK_TICKS_PER_SEC)
}

/// `USER_HZ`, 100 on every Linux architecture ccad runs on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces, so fields are counted after its closing parenthesis.
fn parse_stat_cpu_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is f[n - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&text, key)
}

/// The value of a `Key:   123 kB` line.
fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_lines() {
        let text = "Name:\ttrain\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        // Fields 14/15 = utime 250 and stime 50 ticks; the name holds a space and a ')'.
        let stat = "42 (my (odd) exe) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(300));
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds().is_some());
            assert!(peak_memory_mib().unwrap() > 0.0);
        }
    }
}
